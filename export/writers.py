"""Format writers: turn judgments into trainer-ready rows, byte for byte the same on every run.

The TRL preference view is *conversational with an explicit prompt*: one JSON object per line,

    {"prompt": [{"role", "content"}, ...],            # the prompt's turns, as stored
     "chosen": [{"role": "assistant", "content": ...}],
     "rejected": [{"role": "assistant", "content": ...}],
     "margin": 1.0 | 2.0 | 3.0,                       # see MARGIN_MAPPING
     "prompt_id": str, "comparison_id": int, "ranking_id": null,
     "rater_id": str, "judgment_id": int}

with the keys in exactly that order. TRL's RewardTrainer and DPOTrainer (and OpenRLHF with
``--apply_chat_template``) read ``prompt``/``chosen``/``rejected``/``margin`` and ignore the
provenance columns after them.

Guarantees:

* Every written row has a float ``margin``: TRL's collator looks only at the first row to decide
  whether margins exist, and fails on a null.
* Ties (preference 0) are never written; they are counted. Ranking judgments (K-way) are not
  expanded yet; they are counted as ``rankings`` and left out.
* ``ranking_id`` is always present and always null in this view (pairs), so the column keeps one type.
* ``rater_id`` never carries a username: it is a keyed hash of the user id, stable within one
  dataset name and unlinkable across names (see :func:`rater_pseudonym`).
* Lines are ``json.dumps(row, ensure_ascii=False, separators=(",", ":"))`` plus ``\\n`` in UTF-8;
  given the same judgments in the same order the output bytes are identical.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings

from labeling.models import Judgment

VIEW = "conversational, explicit prompt"

#: |preference| (the strength the rater chose, in either direction) -> TRL ``margin``.
MARGIN_MAPPING: dict[int, float] = {1: 1.0, 2: 2.0, 3: 3.0}

MARGIN_MAPPING_DOC: dict[str, Any] = {
    "source": "judgment.preference, -3..3 in the labels the rater saw (negative = A better, 0 = tie)",
    "margin": "abs(preference) as a float",
    "values": {"1 (slightly better)": 1.0, "2 (better)": 2.0, "3 (much better)": 3.0},
    "ties": "preference 0 is left out and counted in skipped.ties",
}

TRL_COLUMNS: tuple[str, ...] = (
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "prompt_id",
    "comparison_id",
    "ranking_id",
    "rater_id",
    "judgment_id",
)

RATER_ID_DOC = "first 16 hex chars of HMAC-SHA256(key = SECRET_KEY + NUL + dataset name, message = user id)"


class ExportDataError(Exception):
    """Stored data cannot be written in the requested format; the message names the judgment."""


def rater_pseudonym(*, user_id: int, name: str) -> str:
    """A pseudonymous rater id: stable for one (user, dataset name), unlinkable to the username.

    Keyed with the site's SECRET_KEY and the dataset name, so the same rater gets the same id in
    every snapshot of one dataset, and different ids across datasets.
    """
    key = settings.SECRET_KEY.encode("utf-8") + b"\x00" + name.encode("utf-8")
    return hmac.new(key, str(user_id).encode("ascii"), hashlib.sha256).hexdigest()[:16]


def dumps_line(row: dict[str, Any]) -> bytes:
    """One JSONL line, in the one serialization every export uses."""
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


@dataclass
class WriteStats:
    rows: int = 0
    ties: int = 0
    rankings: int = 0


class TrlPreferenceWriter:
    """Writes judgments as TRL preference rows to a binary stream, hashing what it writes.

    Expects each judgment with ``assignment__item__comparison__prompt`` loaded and the
    comparison's ``members`` (with ``candidate``) prefetched; it issues no queries itself.
    """

    def __init__(self, out: BinaryIO, *, name: str) -> None:
        self._out = out
        self._name = name
        self._hash = hashlib.sha256()
        self._pseudonyms: dict[int, str] = {}
        self.stats = WriteStats()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, judgment: Judgment) -> None:
        """Write one judgment's row, or count it as a tie or a ranking and write nothing."""
        if judgment.preference is None:
            self.stats.rankings += 1
            return
        if judgment.preference == 0:
            self.stats.ties += 1
            return
        line = dumps_line(self.row(judgment))
        self._out.write(line)
        self._hash.update(line)
        self.stats.rows += 1

    def row(self, judgment: Judgment) -> dict[str, Any]:
        """The row for a non-tie pair judgment, keys in TRL_COLUMNS order."""
        preference = judgment.preference
        assert preference is not None and preference != 0  # write() filters these out
        margin = MARGIN_MAPPING.get(abs(preference))
        if margin is None:
            raise ExportDataError(f"judgment {judgment.pk}: preference {preference} is outside -3..3")
        assignment = judgment.assignment
        comparison = assignment.item.comparison
        shown = assignment.shown_order
        if not isinstance(shown, list) or len(shown) != 2:
            raise ExportDataError(
                f"judgment {judgment.pk}: a pair preference needs 2 shown candidates, "
                f"assignment {assignment.pk} shows {shown!r}"
            )
        texts = {member.candidate_id: member.candidate.text for member in comparison.members.all()}
        missing = [cid for cid in shown if cid not in texts]
        if missing:
            raise ExportDataError(
                f"judgment {judgment.pk}: shown candidates {missing} are not in comparison {comparison.pk}"
            )
        # Index 0 of shown_order is label "A"; a negative preference means A was better.
        label_a, label_b = texts[shown[0]], texts[shown[1]]
        chosen, rejected = (label_a, label_b) if preference < 0 else (label_b, label_a)
        prompt = comparison.prompt
        return {
            "prompt": _messages(prompt.messages, judgment_id=judgment.pk),
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "margin": margin,
            "prompt_id": prompt.public_id,
            "comparison_id": comparison.pk,
            "ranking_id": None,
            "rater_id": self._pseudonym(assignment.rater_id),
            "judgment_id": judgment.pk,
        }

    def _pseudonym(self, user_id: int) -> str:
        # Cached: one HMAC per rater, not per row.
        if user_id not in self._pseudonyms:
            self._pseudonyms[user_id] = rater_pseudonym(user_id=user_id, name=self._name)
        return self._pseudonyms[user_id]


def _messages(messages: Any, *, judgment_id: int) -> list[dict[str, str]]:
    """Only ``role`` and ``content``, in that order, so extra stored keys never change the bytes."""
    try:
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    except (TypeError, KeyError) as exc:
        raise ExportDataError(f"judgment {judgment_id}: the prompt's messages are malformed ({exc!r})")
