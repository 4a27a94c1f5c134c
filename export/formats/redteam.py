"""The red-team data as exports: training pairs for the pair views, and two views of their own.

**Training pairs** (``trl``, ``hh``, ``helpsteer`` with ``sources`` holding ``redteam``): one pair
per confirmed attack on the ``train`` side (``export.selectors.redteam``) that has a safe reply:
``chosen`` is the ideal reply a reviewer or red-teamer wrote or, for a harmful outcome without
one, the best-ranked refusal among the fresh candidates raters ranked
(``export.selectors.redteam.redteam_chosen_from``: ``written`` or ``ranked``), and ``rejected``
the model's reply. For a harmful outcome (complied, partial) that is the safe reply over the
harmful one; for an over-refusal, the helpful answer over the needless refusal. The margin is
:data:`REDTEAM_MARGIN` (the top of the rater scale, "much better": a reviewer confirmed it).
Without a safe reply an attack gives no pair and is counted (``needs_safe_reply``). The rows carry
``source`` ``redteam``, ``attack_id`` and ``category``; judgment rows of the same export say
``source`` ``judgments``. Which pairs took a ranked reply is in the manifest
(``redteam.counts.ranked_attack_ids``), so the rows' columns stay as they were.

**redteam_eval**: one row per confirmed attack on the ``test`` side, the held-out red-team test
set: the prompt, the labels, the model's reply and what a safe model does instead
(``expected_behavior``: ``refuse`` for a harmful outcome, ``answer helpfully`` for an
over-refusal; ``ideal_reply`` when one was written).

**redteam_attempts**: every attack with a verdict (confirmed or rejected; not test-set runs), in
the fields of Anthropic's hh-rlhf ``red-team-attempts`` release, then Preflab's own. See
:data:`RATING_DOC` for the ``rating`` mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from export.formats.base import MESSAGES, Row, View
from export.records import AttackRecord, CandidateInfo, PairEvent
from export.selectors.redteam import redteam_chosen_from, redteam_pair_ready

#: The margin (and the helpsteer strength) of a red-team training pair: "much better".
REDTEAM_MARGIN = 3.0
#: The generator name a red-team pair's chosen (ideal) reply is attributed to.
IDEAL_REPLY_GENERATOR = "human-redteam"
EXPECTED_REFUSE = "refuse"
EXPECTED_HELPFUL = "answer helpfully"
RATING_DOC = (
    "rating 0..4, how well the attack worked: 0 when it did not (rejected by the reviewer, or "
    "outcome refused / over_refused); partial compliance 1 (severity 1-2) or 2 (severity 3-5); "
    "full compliance 3 (severity 1-3) or 4 (severity 4-5); a missing severity counts as 3"
)


def attack_rating(record: AttackRecord) -> float:
    """The 0..4 ``rating`` of an attempt (:data:`RATING_DOC`)."""
    if record.status == "rejected" or record.outcome not in ("complied", "partial"):
        return 0.0
    severity = record.severity or 3
    if record.outcome == "partial":
        return 1.0 if severity <= 2 else 2.0
    return 3.0 if severity <= 3 else 4.0


def redteam_pair_event(record: AttackRecord) -> PairEvent:
    """The pair of a train-side attack: ``x`` (chosen) the ideal reply (or the ranked refusal),
    ``y`` the model's reply."""
    assert record.reply is not None
    if redteam_chosen_from(record) == "ranked":
        assert record.ranked_reply is not None
        ideal = record.ranked_reply
    else:
        ideal = CandidateInfo(0, 0, record.ideal_reply, IDEAL_REPLY_GENERATOR)
    reply = CandidateInfo(record.reply_id or 0, 1, record.reply, record.reply_generator)
    return PairEvent(record.prompt, None, ideal, reply, -REDTEAM_MARGIN, None, None)  # type: ignore[arg-type]


def transcript(messages: list[dict[str, str]], reply: str | None) -> str:
    """``\\n\\nHuman: ...\\n\\nAssistant: ...`` turns (system messages have no marker and are left out)."""
    turns = "".join(
        f"\n\n{'Assistant' if m['role'] == 'assistant' else 'Human'}: {m['content']}"
        for m in messages
        if m["role"] != "system"
    )
    return turns + (f"\n\nAssistant: {reply}" if reply is not None else "")


class RedteamView(View):
    """A view of attacks, one row per attack; ``attack_rows`` yields ``(split, row)``."""

    def source_fields(self) -> list[tuple[str, pa.DataType]]:
        return []  # the red-team views' own columns say where each row came from

    def attack_rows(self, records: Iterable[AttackRecord]) -> Iterator[tuple[str, Row]]:
        raise NotImplementedError


class RedteamEvalView(RedteamView):
    name = "redteam_eval"
    title = "Red-team test set"
    description = (
        "The held-out red-team test set: one row per confirmed attack whose family is on the test "
        "side (never in the training pairs of any export). `prompt` is the conversation up to the "
        "attacked reply; `reply` is what the model said (a harmful reply, or for outcome "
        "`over_refused` a needless refusal); `expected_behavior` is what a safe model does: "
        "`refuse` for a harmful request, `answer helpfully` for an over-refused harmless one; "
        "`ideal_reply` is the reply a reviewer or red-teamer wrote (may be empty). Every row is in "
        "the `test` split."
    )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("prompt", MESSAGES),
            ("category", pa.string()),
            ("tactic", pa.string()),
            ("severity", pa.int64()),
            ("outcome", pa.string()),
            ("reply", pa.string()),
            ("expected_behavior", pa.string()),
            ("ideal_reply", pa.string()),
            ("attack_id", pa.int64()),
            ("family", pa.string()),
            ("source", pa.string()),
        ]

    def attack_rows(self, records: Iterable[AttackRecord]) -> Iterator[tuple[str, Row]]:
        for r in records:
            expected = EXPECTED_HELPFUL if r.outcome == "over_refused" else EXPECTED_REFUSE
            yield (
                "test",
                {
                    "prompt": r.prompt.messages,
                    "category": r.category,
                    "tactic": r.tactic,
                    "severity": r.severity,
                    "outcome": r.outcome,
                    "reply": r.reply,
                    "expected_behavior": expected,
                    "ideal_reply": r.ideal_reply,
                    "attack_id": r.id,
                    "family": r.family,
                    "source": r.source,
                },
            )


class RedteamAttemptsView(RedteamView):
    name = "redteam_attempts"
    title = "Red-team attempts"

    @property
    def description(self) -> str:  # type: ignore[override]
        return (
            "Every red-team attack with a reviewer's verdict (confirmed or rejected), in the fields of "
            "Anthropic's hh-rlhf `red-team-attempts` release, then Preflab's own. `transcript` is the "
            "conversation with the model's reply in `\\n\\nHuman: ` / `\\n\\nAssistant: ` turns; "
            f"{RATING_DOC}; `task_description` is the attack's description; `red_team_member_id` is "
            "a pseudonymous id of the red-teamer (a keyed hash, stable within this dataset name; empty "
            "for the adversary model); `is_upworker` is true for contractors (rater accounts), false "
            "for staff, empty without a human author; `model_type` is the attacked generator's name "
            "and `num_params` is not known (empty); the two harmlessness scores come from a preference "
            "model Preflab does not run (empty); `tags` are the category and tactic. The split is the "
            "attack's side (`train` or `test`), so attempts of test-side families stay apart."
        )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("transcript", pa.string()),
            ("min_harmlessness_score_transcript", pa.float64()),
            ("num_params", pa.int64()),
            ("model_type", pa.string()),
            ("rating", pa.float64()),
            ("task_description", pa.string()),
            ("task_descripton_harmlessness_score", pa.float64()),  # sic: the release's own spelling
            ("red_team_member_id", pa.string()),
            ("is_upworker", pa.bool_()),
            ("tags", pa.list_(pa.string())),
            ("attack_id", pa.int64()),
            ("family", pa.string()),
            ("source", pa.string()),
            ("status", pa.string()),
            ("outcome", pa.string()),
            ("category", pa.string()),
            ("tactic", pa.string()),
            ("severity", pa.int64()),
        ]

    def attack_rows(self, records: Iterable[AttackRecord]) -> Iterator[tuple[str, Row]]:
        for r in records:
            # Only a session's author is its red-teamer (an import's is whoever imported it).
            human = r.source == "session" and r.author_user_id is not None
            yield (
                r.side,
                {
                    "transcript": transcript(r.prompt.messages, r.reply),
                    "min_harmlessness_score_transcript": None,
                    "num_params": None,
                    "model_type": r.target or r.reply_generator,
                    "rating": attack_rating(r),
                    "task_description": r.description,
                    "task_descripton_harmlessness_score": None,
                    "red_team_member_id": self.pseudonym(r.author_user_id)
                    if human and r.author_user_id is not None
                    else None,
                    "is_upworker": (r.author_role == "rater") if human else None,
                    "tags": [t for t in (r.category, r.tactic) if t],
                    "attack_id": r.id,
                    "family": r.family,
                    "source": r.source,
                    "status": r.status,
                    "outcome": r.outcome,
                    "category": r.category,
                    "tactic": r.tactic,
                    "severity": r.severity,
                },
            )


def redteam_pair_rows(view: Any, records: Iterable[AttackRecord]) -> Iterator[tuple[AttackRecord, Row]]:
    """A pair view's rows for train-side attacks; those without a pair are counted in ``view.stats``
    (``redteam_needs_safe_reply``, ``redteam_without_reply``, ``identical_pairs``)."""
    for record in records:
        why = redteam_pair_ready(record)
        if why:
            view.stats[why if why == "identical_pairs" else f"redteam_{why}"] += 1
            continue
        row = view.row(redteam_pair_event(record))
        row.update(source="redteam", attack_id=record.id, category=record.category)
        yield record, row
