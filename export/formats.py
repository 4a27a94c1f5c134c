"""The views of the data: each a projection of the lossless judgment records into rows.

A view has an Arrow ``schema`` (column order and types, the same for JSONL and Parquet and for
the dataset card's ``features``), a prose ``description`` for the card, and ``rows(groups)``:
given the judgments grouped by comparison, it yields ``(prompt, row)`` pairs with the row's keys
in schema order, counting what it leaves out in ``stats``.

Margin mapping (``trl``, ``rankings`` pairs): ``margin = abs(strength)`` as a float, where the
strength of a single pair judgment is its preference (1 slightly, 2 better, 3 much better), of a
ranking pair the number of groups between the two (capped at 3), and of an aggregated pair the
aggregated strength. Ties (strength 0) are left out of ``trl``, ``hh`` and ``rankings`` pairs
and counted; ``helpsteer`` keeps them (its scale has 0 = about the same).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from export.records import (
    LABELS,
    CandidateInfo,
    JudgmentRecord,
    PairEvent,
    PromptInfo,
    aggregate_events,
    pair_events,
)

Row = dict[str, Any]
Groups = Iterable[list[JudgmentRecord]]

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

MARGIN_MAPPING_DOC: dict[str, Any] = {
    "source": "judgment.preference, -3..3 in the labels the rater saw (negative = A better, 0 = tie)",
    "margin": "abs(strength) as a float",
    "values": {"1 (slightly better)": 1.0, "2 (better)": 2.0, "3 (much better)": 3.0},
    "rankings": "a ranking pair's strength is the number of groups between the two responses, capped at 3",
    "aggregated": "majority: mean strength of the winning votes; mean: abs(mean signed strength)",
    "ties": "strength 0 is left out and counted in skipped.ties",
}


def _role_name(role: str) -> str:
    return {"user": "User", "assistant": "Assistant", "system": "System"}.get(role, role.title())


def flat_prompt(messages: list[dict[str, str]]) -> str:
    """A conversation as one string: a lone user turn as it is, else ``Role: text`` turns."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{_role_name(m['role'])}: {m['content']}" for m in messages)


def _provenance_fields(aggregated: bool) -> list[tuple[str, pa.DataType]]:
    fields = [
        ("prompt_id", pa.string()),
        ("comparison_id", pa.int64()),
        ("ranking_id", pa.int64()),
        ("rater_id", pa.string()),
        ("judgment_id", pa.int64()),
    ]
    if aggregated:
        fields += [("n_judgments", pa.int64()), ("agreement", pa.float64())]
    return fields


class View:
    name = ""
    title = ""
    description = ""

    def __init__(
        self,
        *,
        aggregation: str,
        options: dict[str, Any],
        pseudonym: Callable[[int], str],
        queue_names: dict[int, str],
        likert_keys: list[str] | None = None,
    ) -> None:
        self.aggregation = aggregation
        self.options = options
        self.pseudonym = pseudonym
        self.queue_names = queue_names
        self.likert_keys = likert_keys or []
        self.stats: Counter[str] = Counter()
        self.schema = pa.schema(self.fields())

    def fields(self) -> list[tuple[str, pa.DataType]]:
        raise NotImplementedError

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def columnar(self) -> bool:
        """Whether ``export.columnar`` may write this view (raw pair views built from ``PairView``'s parts)."""
        return False

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        raise NotImplementedError


class PairView(View):
    """Views built from pairwise events: raw (one per pair judgment, K-choose-2 per ranking) or aggregated."""

    keep_ties = False

    @property
    def aggregated(self) -> bool:
        return self.aggregation != "raw"

    def events(self, groups: Groups) -> Iterator[PairEvent]:
        for group in groups:
            if self.aggregated:
                yield from aggregate_events(group, aggregation=self.aggregation)
            else:
                for record in group:
                    yield from pair_events(record)

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        for event in self.events(groups):
            if event.strength == 0 and not self.keep_ties:
                self.stats["ties"] += 1
                continue
            yield event.prompt, self.row(event)

    # A columnar view's rows are: the columns that depend on the prompt alone (prompt_columns),
    # ``chosen`` and ``rejected`` (the completion of each candidate), then ``margin`` and provenance.
    # ``export.columnar`` builds those columns once per prompt and candidate from the same two
    # methods that :meth:`row` uses.

    def prompt_columns(self, prompt: PromptInfo) -> Row:
        raise NotImplementedError

    def completion(self, prompt: PromptInfo, candidate: CandidateInfo) -> Any:
        raise NotImplementedError

    def row(self, event: PairEvent) -> Row:
        raise NotImplementedError

    def provenance(self, event: PairEvent) -> Row:
        record = event.record
        row: Row = {
            "prompt_id": event.prompt.public_id,
            "comparison_id": event.comparison_id,
            "ranking_id": event.ranking_id,
            "rater_id": self.pseudonym(record.rater_user_id) if record is not None else None,
            "judgment_id": record.id if record is not None else None,
        }
        if self.aggregated:
            row["n_judgments"] = event.n_judgments
            row["agreement"] = event.agreement
        return row


def _chosen_rejected(event: PairEvent) -> tuple[CandidateInfo, CandidateInfo]:
    return (event.x, event.y) if event.strength < 0 else (event.y, event.x)


class TrlView(PairView):
    name = "trl"
    title = "TRL preference"

    @property
    def standard(self) -> bool:
        return bool(self.options.get("standard"))

    @property
    def implicit(self) -> bool:
        return bool(self.options.get("implicit_prompt"))

    @property
    def description(self) -> str:  # type: ignore[override]
        fmt = "Standard (plain strings)" if self.standard else "Conversational (message lists)"
        prompt = "implicit prompt" if self.implicit else "explicit prompt"
        return (
            f"Format: {fmt}. Type: Preference, {prompt}. Read by TRL's RewardTrainer (which uses "
            "`margin`) and DPOTrainer, and by OpenRLHF (`--prompt_key prompt --chosen_key chosen "
            "--rejected_key rejected --apply_chat_template` for the conversational format). The "
            "columns after `margin` are provenance that trainers ignore; pairs from one K-way "
            "ranking share a `ranking_id`."
        )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        text = pa.string() if self.standard else MESSAGES
        head = [] if self.implicit else [("prompt", text)]
        return (
            head
            + [("chosen", text), ("rejected", text), ("margin", pa.float64())]
            + _provenance_fields(self.aggregated)
        )

    @property
    def columnar(self) -> bool:
        return not self.aggregated

    def prompt_columns(self, prompt: PromptInfo) -> Row:
        if self.implicit:
            return {}
        return {"prompt": standard_prompt(prompt.messages) if self.standard else prompt.messages}

    def completion(self, prompt: PromptInfo, candidate: CandidateInfo) -> Any:
        """``chosen`` / ``rejected`` for one candidate (with the prompt in front when it is implicit)."""
        if self.standard:
            text = standard_completion(candidate.text)
            return standard_prompt(prompt.messages) + text if self.implicit else text
        turn = [{"role": "assistant", "content": candidate.text}]
        return prompt.messages + turn if self.implicit else turn

    def row(self, event: PairEvent) -> Row:
        chosen, rejected = _chosen_rejected(event)
        row = self.prompt_columns(event.prompt)
        row["chosen"] = self.completion(event.prompt, chosen)
        row["rejected"] = self.completion(event.prompt, rejected)
        row["margin"] = float(abs(event.strength))
        row.update(self.provenance(event))
        return row


def standard_prompt(messages: list[dict[str, str]]) -> str:
    """The standard-format prompt: ``Role: text`` turns joined by blank lines, then ``Assistant:``."""
    return "\n\n".join(f"{_role_name(m['role'])}: {m['content']}" for m in messages) + "\n\nAssistant:"


def standard_completion(text: str) -> str:
    """TRL concatenates prompt + completion verbatim: the completion carries its leading space."""
    return text if text[:1].isspace() else " " + text


class HhView(PairView):
    name = "hh"
    title = "Anthropic HH-RLHF"
    description = (
        "Format: Standard, implicit prompt (Anthropic HH-RLHF transcripts). `chosen` and `rejected` are "
        "whole dialogues with `\\n\\nHuman: ` and `\\n\\nAssistant: ` turns that differ in the last "
        "assistant turn. A system message has no HH marker; it is kept in the `system` column instead."
    )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("system", pa.string()),
        ] + _provenance_fields(self.aggregated)

    @property
    def columnar(self) -> bool:
        return not self.aggregated

    def prompt_columns(self, prompt: PromptInfo) -> Row:
        return {"system": "\n\n".join(m["content"] for m in prompt.messages if m["role"] == "system")}

    def completion(self, prompt: PromptInfo, candidate: CandidateInfo) -> Any:
        """The whole transcript ending in this candidate's assistant turn."""
        turns = "".join(
            f"\n\n{'Assistant' if m['role'] == 'assistant' else 'Human'}: {m['content']}"
            for m in prompt.messages
            if m["role"] != "system"
        )
        return f"{turns}\n\nAssistant: {candidate.text}"

    def row(self, event: PairEvent) -> Row:
        chosen, rejected = _chosen_rejected(event)
        row: Row = {
            "chosen": self.completion(event.prompt, chosen),
            "rejected": self.completion(event.prompt, rejected),
            **self.prompt_columns(event.prompt),
        }
        row.update(self.provenance(event))
        return row


class HelpSteerView(PairView):
    name = "helpsteer"
    title = "HelpSteer2-Preference"
    keep_ties = True
    description = (
        "HelpSteer2-Preference style pairs: `preference_strength` -3..3, where -3 means response_1 is much "
        "better, 0 about the same, 3 response_2 much better. In raw exports response_1 is the response "
        "the rater saw first (label A). `preference_statement` is the rater's rationale. `prompt` is the "
        "conversation as one string (a lone user turn as it is, else `User: ...` turns); "
        "`prompt_messages` keeps the turns."
    )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("prompt", pa.string()),
            ("prompt_messages", MESSAGES),
            ("response_1", pa.string()),
            ("response_2", pa.string()),
            ("preference_strength", pa.int64()),
            ("preference_statement", pa.string()),
        ] + _provenance_fields(self.aggregated)

    def row(self, event: PairEvent) -> Row:
        record = event.record
        row: Row = {
            "prompt": flat_prompt(event.prompt.messages),
            "prompt_messages": event.prompt.messages,
            "response_1": event.x.text,
            "response_2": event.y.text,
            "preference_strength": int(round(event.strength)),
            "preference_statement": (record.rationale or "") if record is not None else "",
        }
        row.update(self.provenance(event))
        return row


class RankingsView(View):
    name = "rankings"
    title = "K-way rankings"

    @property
    def pairs(self) -> bool:
        return bool(self.options.get("pairs"))

    @property
    def description(self) -> str:  # type: ignore[override]
        if self.pairs:
            return (
                "K-way rankings expanded to their K-choose-2 pairs, in the TRL conversational preference "
                "format (`prompt`, `chosen`, `rejected`, `margin`). All pairs of one ranking share a "
                "`ranking_id`: keep them in one batch element (the InstructGPT recipe) rather than "
                "shuffling them apart. Tied pairs are left out."
            )
        return (
            "One row per K-way ranking judgment. `responses` lists the candidates in stored order; "
            "`ranking` is groups of indices into `responses`, best first, ties grouped; `shown_order` "
            "is the indices in the order the rater saw them (label A first). Pair judgments are left out."
        )

    def fields(self) -> list[tuple[str, pa.DataType]]:
        if self.pairs:
            return [
                ("prompt", MESSAGES),
                ("chosen", MESSAGES),
                ("rejected", MESSAGES),
                ("margin", pa.float64()),
            ] + _provenance_fields(False)
        return [
            ("prompt_id", pa.string()),
            ("prompt", MESSAGES),
            (
                "responses",
                pa.list_(
                    pa.struct(
                        [("candidate_id", pa.int64()), ("text", pa.string()), ("generator", pa.string())]
                    )
                ),
            ),
            ("ranking", pa.list_(pa.list_(pa.int64()))),
            ("shown_order", pa.list_(pa.int64())),
            ("k", pa.int64()),
            ("comparison_id", pa.int64()),
            ("ranking_id", pa.int64()),
            ("rater_id", pa.string()),
        ]

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        for group in groups:
            for record in group:
                if record.ranking is None:
                    self.stats["pair_judgments"] += 1
                    continue
                if self.pairs:
                    for event in pair_events(record):
                        if event.strength == 0:
                            self.stats["ties"] += 1
                            continue
                        chosen, rejected = _chosen_rejected(event)
                        yield (
                            record.prompt,
                            {
                                "prompt": record.prompt.messages,
                                "chosen": [{"role": "assistant", "content": chosen.text}],
                                "rejected": [{"role": "assistant", "content": rejected.text}],
                                "margin": float(abs(event.strength)),
                                "prompt_id": record.prompt.public_id,
                                "comparison_id": record.comparison_id,
                                "ranking_id": record.id,
                                "rater_id": self.pseudonym(record.rater_user_id),
                                "judgment_id": record.id,
                            },
                        )
                    continue
                yield (
                    record.prompt,
                    {
                        "prompt_id": record.prompt.public_id,
                        "prompt": record.prompt.messages,
                        "responses": [
                            {"candidate_id": c.id, "text": c.text, "generator": c.generator}
                            for c in record.candidates
                        ],
                        "ranking": [sorted(c.position for c in group) for group in record.groups()],
                        "shown_order": [c.position for c in record.shown],
                        "k": len(record.candidates),
                        "comparison_id": record.comparison_id,
                        "ranking_id": record.id,
                        "rater_id": self.pseudonym(record.rater_user_id),
                    },
                )


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
    description = (
        "Preflab's lossless record: one row per judgment, with the prompt, every candidate with its "
        "generator, model revision and sampling parameters (`sampling` as a JSON string), the order shown "
        "to the rater (`shown_order`, candidate ids, label A first), the overall `preference` (-3..3 in "
        "shown labels, negative = A better) or the `ranking` (groups of shown labels, best first, ties "
        "grouped), per-criterion answers (`criteria`; pairwise criteria in shown labels, Likert scores "
        "per label and candidate id), flags, rationale, rewritten response, pseudonymous rater id, active "
        "time, rubric version, timestamp, queue, and gold markers (`gold_answer` as JSON, in candidate "
        "positions). `adjudicated` is always false: Preflab has no adjudication step yet."
    )

    def __init__(self, *, rubric_kinds: dict[int, dict[str, str]] | None = None, **kwargs: Any) -> None:
        self.rubric_kinds = rubric_kinds or {}
        super().__init__(**kwargs)

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
                for c in record.candidates
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
            "adjudicated": False,
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


class RatingsView(View):
    name = "ratings"
    title = "Per-response ratings"

    @property
    def description(self) -> str:  # type: ignore[override]
        keys = ", ".join(f"`{k}`" for k in self.rating_columns) or "(none in these rubrics)"
        return (
            "UltraFeedback / HelpSteer2-ratings style: one row per response a rater scored, with one integer "
            f"column per Likert criterion (1..7, null when not answered): {keys}. Judgments without Likert "
            "answers give no rows."
        )

    @property
    def rating_columns(self) -> list[str]:
        fixed = {name for name, _ in self._fixed()}
        return [k if k not in fixed else f"{k}_rating" for k in self.likert_keys]

    def _fixed(self) -> list[tuple[str, pa.DataType]]:
        return [
            ("prompt_id", pa.string()),
            ("prompt", MESSAGES),
            ("response", pa.string()),
            ("candidate_id", pa.int64()),
            ("generator", pa.string()),
            ("label", pa.string()),
            ("comparison_id", pa.int64()),
            ("judgment_id", pa.int64()),
            ("rater_id", pa.string()),
            ("rubric_id", pa.int64()),
        ]

    def fields(self) -> list[tuple[str, pa.DataType]]:
        return self._fixed() + [(column, pa.int64()) for column in self.rating_columns]

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        columns = dict(zip(self.likert_keys, self.rating_columns, strict=True))
        for group in groups:
            for record in group:
                answers = {
                    key: value
                    for key, value in (record.criteria or {}).items()
                    if key in columns and isinstance(value, dict)
                }
                if not answers:
                    self.stats["judgments_without_ratings"] += 1
                    continue
                for index, candidate in enumerate(record.shown):
                    label = LABELS[index]
                    scores = {columns[key]: value.get(label) for key, value in answers.items()}
                    if all(v is None for v in scores.values()):
                        continue
                    row: Row = {
                        "prompt_id": record.prompt.public_id,
                        "prompt": record.prompt.messages,
                        "response": candidate.text,
                        "candidate_id": candidate.id,
                        "generator": candidate.generator,
                        "label": label,
                        "comparison_id": record.comparison_id,
                        "judgment_id": record.id,
                        "rater_id": self.pseudonym(record.rater_user_id),
                        "rubric_id": record.rubric_id,
                    }
                    for column in self.rating_columns:
                        row[column] = scores.get(column)
                    yield record.prompt, row


VIEWS: dict[str, type[View]] = {
    "trl": TrlView,
    "hh": HhView,
    "helpsteer": HelpSteerView,
    "rankings": RankingsView,
    "native": NativeView,
    "ratings": RatingsView,
}

# Views that read criteria, rationale, timestamps: the rest skip those columns for speed.
FULL_RECORD_VIEWS = ("native", "ratings", "helpsteer")
