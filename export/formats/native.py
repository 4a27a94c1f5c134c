"""The ``native`` view: Preflab's lossless record, one row per judgment with everything stored
about it (candidates and their sampling, shown order, per-criterion answers, rater, timing, gold).

A comparison's duplicates (unseen copies of a shown text) follow its candidates in ``candidates``
with the ``position`` of the copy they repeat (tied with it); ``shown_order`` lists shown ones only.

Criteria answers are written in a fixed struct (``key``, ``kind`` and one value column per kind),
keyed by the rubric's criterion kinds and, for a criterion the rubric no longer names, by the
kind the stored value looks like. Empty or missing JSON values are written as null.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from export.formats.base import MESSAGES, Groups, Row, View
from export.records import LABELS, JudgmentRecord, PromptInfo
from labeling.selectors.reviews import adjudicated_labels

_CRITERION = pa.struct(
    [
        ("key", pa.string()),
        ("kind", pa.string()),
        ("preference", pa.int64()),
        (
            "likert",
            pa.list_(
                pa.struct([("label", pa.string()), ("candidate_id", pa.int64()), ("score", pa.int64())])
            ),
        ),
        ("flag", pa.bool_()),
        ("text", pa.string()),
    ]
)


def _json_or_none(value: Any) -> str | None:
    if value is None or value == {} or value == []:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class NativeView(View):
    name = "native"
    title = "Native (lossless)"
    reads_duplicates = True
    base_description = (
        "Preflab's lossless record: one row per judgment, with the prompt, every candidate with its "
        "generator, model revision and sampling parameters (`sampling` as a JSON string), the order shown "
        "to the rater (`shown_order`, candidate ids, label A first), the overall `preference` (-3..3 in "
        "shown labels, negative = A better) or the `ranking` (groups of shown labels, best first, ties "
        "grouped), per-criterion answers (`criteria`; pairwise criteria in shown labels, Likert scores "
        "per label and candidate id), flags, rationale, rewritten response, pseudonymous rater id, active "
        "time, rubric version, timestamp, queue, and gold markers (`gold_answer` as JSON, in candidate "
        "positions). `adjudicated` is true when a reviewer gave the comparison a final label (the label is "
        "in the pairwise views exported with aggregation `adjudicated`)."
    )

    @property
    def description(self) -> str:  # type: ignore[override]
        if not self.listed_duplicates:
            return self.base_description
        return self.base_description + (
            " Some rows' `candidates` also list, after the candidates shown, responses the rater did "
            "not see because their text repeats a shown one: each has the `position` of the shown copy "
            "(it is tied with it) and is absent from `shown_order`."
        )

    def __init__(self, *, rubric_kinds: dict[int, dict[str, str]] | None = None, **kwargs: Any) -> None:
        self.rubric_kinds = rubric_kinds or {}
        super().__init__(**kwargs)
        self.reviewed = set(adjudicated_labels(comparison_ids=None, queue_ids=self.filters.get("queues")))

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("judgment_id", pa.int64()),
            ("comparison_id", pa.int64()),
            ("prompt_id", pa.string()),
            ("prompt", MESSAGES),
            ("prompt_source", pa.string()),
            ("prompt_tags", pa.list_(pa.string())),
            ("queue_id", pa.int64()),
            ("queue", pa.string()),
            ("task", pa.string()),
            (
                "candidates",
                pa.list_(
                    pa.struct(
                        [
                            ("candidate_id", pa.int64()),
                            ("position", pa.int64()),
                            ("text", pa.string()),
                            ("generator", pa.string()),
                            ("model_revision", pa.string()),
                            ("sampling", pa.string()),
                            ("seed", pa.int64()),
                            ("finish_reason", pa.string()),
                        ]
                    )
                ),
            ),
            ("shown_order", pa.list_(pa.int64())),
            ("preference", pa.int64()),
            ("ranking", pa.list_(pa.list_(pa.string()))),
            ("criteria", pa.list_(_CRITERION)),
            ("flags", pa.list_(pa.string())),
            ("rationale", pa.string()),
            ("rewrite", pa.string()),
            ("rater_id", pa.string()),
            ("active_seconds", pa.float64()),
            ("rubric_id", pa.int64()),
            ("rubric_version", pa.int64()),
            ("created_at", pa.string()),
            ("is_gold", pa.bool_()),
            ("gold_answer", pa.string()),
            ("adjudicated", pa.bool_()),
        ]

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        for group in groups:
            for record in group:
                yield record.prompt, self.row(record)

    def row(self, record: JudgmentRecord) -> Row:
        created = record.created_at
        self.listed_duplicates += len(record.duplicates)
        return {
            "judgment_id": record.id,
            "comparison_id": record.comparison_id,
            "prompt_id": record.prompt.public_id,
            "prompt": record.prompt.messages,
            "prompt_source": record.prompt.source,
            "prompt_tags": record.prompt.tags,
            "queue_id": record.queue_id,
            "queue": self.queue_names.get(record.queue_id, ""),
            "task": "ranking" if record.ranking is not None else "pair",
            "candidates": [
                {
                    "candidate_id": c.id,
                    "position": c.position,
                    "text": c.text,
                    "generator": c.generator,
                    "model_revision": c.model_revision,
                    "sampling": _json_or_none(c.sampling),
                    "seed": c.seed,
                    "finish_reason": c.finish_reason,
                }
                for c in record.candidates + record.duplicates
            ],
            "shown_order": [c.id for c in record.shown],
            "preference": record.preference,
            "ranking": record.ranking,
            "criteria": self.criteria(record),
            "flags": [str(f) for f in record.flags or []],
            "rationale": record.rationale or "",
            "rewrite": record.rewrite or None,
            "rater_id": self.pseudonym(record.rater_user_id),
            "active_seconds": record.active_seconds,
            "rubric_id": record.rubric_id,
            "rubric_version": self.rubric_kinds.get(record.rubric_id, {}).get("__version__"),
            "created_at": created.isoformat().replace("+00:00", "Z") if created is not None else None,
            "is_gold": record.is_gold,
            "gold_answer": _json_or_none(record.gold_answer),
            "adjudicated": record.comparison_id in self.reviewed,
        }

    def criteria(self, record: JudgmentRecord) -> list[Row]:
        kinds = self.rubric_kinds.get(record.rubric_id, {})
        out = []
        for key in sorted(record.criteria or {}):
            value = record.criteria[key]
            kind = kinds.get(key) or _guess_kind(value)
            entry: Row = {
                "key": key,
                "kind": kind,
                "preference": None,
                "likert": None,
                "flag": None,
                "text": None,
            }
            if kind == "preference":
                entry["preference"] = int(value)
            elif kind == "likert":
                entry["likert"] = [
                    {"label": label, "candidate_id": _label_candidate(record, label), "score": int(score)}
                    for label, score in sorted(value.items())
                ]
            elif kind == "flag":
                entry["flag"] = bool(value)
            else:
                entry["text"] = str(value)
            out.append(entry)
        return out


def _guess_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, int):
        return "preference"
    if isinstance(value, dict):
        return "likert"
    return "text"


def _label_candidate(record: JudgmentRecord, label: str) -> int | None:
    index = LABELS.find(label)
    return record.shown[index].id if 0 <= index < len(record.shown) else None
