"""The base of every view: a projection of the lossless judgment records into rows.

A view has an Arrow ``schema`` (column order and types, the same for JSONL and Parquet and for
the dataset card's ``features``), a prose ``description`` for the card, and ``rows(groups)``:
given the judgments grouped by comparison (by prompt for aggregated pair views, which pool votes
per candidate pair across comparisons), it yields ``(prompt, row)`` pairs with the row's keys in
schema order, counting what it leaves out in ``stats``.

This module holds :class:`View`, :class:`PairView` (views built from pairwise events, with the
two methods ``export.columnar`` builds its columns from), the provenance columns and the margin
mapping every pair view follows. The views themselves are in the sibling modules.

Margin mapping (``trl``, ``rankings`` pairs): ``margin = abs(strength)`` as a float, where the
strength of a single pair judgment is its preference (1 slightly, 2 better, 3 much better), of a
ranking pair the number of groups between the two (capped at 3), and of an aggregated pair the
aggregated strength. Ties (strength 0) are left out of ``trl``, ``hh`` and ``rankings`` pairs
and counted; ``helpsteer`` keeps them (its scale has 0 = about the same).

No pair view ever writes a pair of identical texts (``comparisons.dedupe.same_text``: the same
once whitespace is normalized), whatever the judgment said: such pairs are left out and counted
in ``identical_pairs`` (only comparisons built without dedupe have them). A comparison's
duplicates (unseen copies of a shown text, tied with it) add no pair rows: each would repeat
its copy's row byte for byte. The views that list candidates (``native``, ``rankings``) list
them, in their copy's place (``View.reads_duplicates``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from comparisons.dedupe import same_text
from export.records import (
    CandidateInfo,
    JudgmentRecord,
    PairEvent,
    PromptInfo,
    pair_events,
    pooled_events,
)
from labeling.selectors.reviews import adjudicated_labels

Row = dict[str, Any]
Groups = Iterable[list[JudgmentRecord]]

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
#: Columns the pair views add when their ``sources`` hold ``redteam`` (``export.formats.redteam``).
REDTEAM_PAIR_FIELDS: list[tuple[str, pa.DataType]] = [
    ("source", pa.string()),
    ("attack_id", pa.int64()),
    ("category", pa.string()),
]

MARGIN_MAPPING_DOC: dict[str, Any] = {
    "source": "judgment.preference, -3..3 in the labels the rater saw (negative = A better, 0 = tie)",
    "margin": "abs(strength) as a float",
    "values": {"1 (slightly better)": 1.0, "2 (better)": 2.0, "3 (much better)": 3.0},
    "rankings": "a ranking pair's strength is the number of groups between the two responses, capped at 3",
    "aggregated": (
        "one row per candidate pair, pooling the votes of every comparison that holds both; "
        "majority: mean strength of the winning votes; mean: abs(mean signed strength)"
    ),
    "helpsteer": (
        "preference_strength of an aggregated row is the aggregated strength rounded half away from "
        "zero, at least 1 when the strength is not 0 (never a tie), at most 3; the exact value is in "
        "aggregated_strength"
    ),
    "ties": "strength 0 is left out and counted in skipped.ties",
}


def _role_name(role: str) -> str:
    return {"user": "User", "assistant": "Assistant", "system": "System"}.get(role, role.title())


def flat_prompt(messages: list[dict[str, str]]) -> str:
    """A conversation as one string: a lone user turn as it is, else ``Role: text`` turns."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{_role_name(m['role'])}: {m['content']}" for m in messages)


def _provenance_fields(aggregation: str) -> list[tuple[str, pa.DataType]]:
    fields = [
        ("prompt_id", pa.string()),
        ("comparison_id", pa.int64()),
        ("ranking_id", pa.int64()),
        ("rater_id", pa.string()),
        ("judgment_id", pa.int64()),
    ]
    if aggregation != "raw":
        fields += [("n_judgments", pa.int64()), ("agreement", pa.float64())]
    if aggregation == "adjudicated":
        fields.append(("adjudicated", pa.bool_()))  # the row's label is a reviewer's, not the majority's
    return fields


class View:
    name = ""
    title = ""
    description = ""
    #: Whether ``rows`` reads ``JudgmentRecord.duplicates`` (the record path then reads them).
    reads_duplicates = False

    def __init__(
        self,
        *,
        aggregation: str,
        options: dict[str, Any],
        pseudonym: Callable[[int], str],
        queue_names: dict[int, str],
        likert_keys: list[str] | None = None,
        filters: dict[str, Any] | None = None,
    ) -> None:
        self.aggregation = aggregation
        self.filters = filters or {}
        self.options = options
        self.pseudonym = pseudonym
        self.queue_names = queue_names
        self.likert_keys = likert_keys or []
        self.stats: Counter[str] = Counter()
        # Duplicates written so far: a view that lists them explains them in its description.
        self.listed_duplicates = 0
        self.schema = pa.schema(self.fields() + self.source_fields())

    def fields(self) -> list[tuple[str, pa.DataType]]:
        raise NotImplementedError

    @property
    def with_redteam(self) -> bool:
        """Whether the export's ``sources`` hold red-team pairs (``export.formats.redteam``)."""
        return "redteam" in self.filters.get("sources", ())

    @property
    def with_judgments(self) -> bool:
        """Whether the export reads judgments (``sources`` default to judgments only)."""
        return "judgments" in self.filters.get("sources", ("judgments",))

    def source_fields(self) -> list[tuple[str, pa.DataType]]:
        """Columns after the view's own: with red-team pairs, which source each row came from."""
        return list(REDTEAM_PAIR_FIELDS) if self.with_redteam else []

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Aggregated views: the raters and rubrics behind the rows kept (the per-pair filters
        # decide which judgments count, so the groups alone cannot say).
        self.rater_ids: set[int] = set()
        self.rubric_ids: set[int] = set()
        if self.aggregated:
            self.stats.update(pairs_below_min_judgments=0, pairs_below_min_agreement=0)
        # Aggregation ``adjudicated``: the reviewers' final labels (few: contested items only),
        # of the exported queues, read once.
        self.reviews: dict[int, dict[str, Any]] = {}
        if self.aggregation == "adjudicated":
            self.reviews = adjudicated_labels(comparison_ids=None, queue_ids=self.filters.get("queues"))

    @property
    def aggregated(self) -> bool:
        return self.aggregation != "raw"

    def events(self, groups: Groups) -> Iterator[PairEvent]:
        """Raw: each judgment's events. Aggregated: ``groups`` are a prompt's judgments each
        (``export_record_groups(pool=True)``), pooled per candidate pair, then ``min_judgments``
        and ``min_agreement`` applied to each pooled pair (its ``n_judgments`` and ``agreement``)."""
        if not self.aggregated:
            for group in groups:
                for record in group:
                    yield from pair_events(record)
            return
        min_judgments = self.filters.get("min_judgments", 1)
        min_agreement = self.filters.get("min_agreement", 0.0)
        for group in groups:
            for event in pooled_events(group, aggregation=self.aggregation, reviews=self.reviews):
                if event.n_judgments < min_judgments:
                    self.stats["pairs_below_min_judgments"] += 1
                    continue
                if event.agreement < min_agreement:
                    self.stats["pairs_below_min_agreement"] += 1
                    continue
                for record in event.records:
                    self.rater_ids.add(record.rater_user_id)
                    self.rubric_ids.add(record.rubric_id)
                yield event

    def rows(self, groups: Groups) -> Iterator[tuple[PromptInfo, Row]]:
        for event in self.events(groups):
            if same_text(event.x.text, event.y.text):
                self.stats["identical_pairs"] += 1
                continue
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
        if self.aggregation == "adjudicated":
            row["adjudicated"] = event.adjudicated
        if self.with_redteam:  # a red-team pair overwrites these (export.formats.redteam)
            row.update(source="judgments", attack_id=None, category=None)
        return row


def _chosen_rejected(event: PairEvent) -> tuple[CandidateInfo, CandidateInfo]:
    return (event.x, event.y) if event.strength < 0 else (event.y, event.x)
