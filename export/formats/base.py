"""The base of every view: a projection of the lossless judgment records into rows.

A view has an Arrow ``schema`` (column order and types, the same for JSONL and Parquet and for
the dataset card's ``features``), a prose ``description`` for the card, and ``rows(groups)``:
given the judgments grouped by comparison, it yields ``(prompt, row)`` pairs with the row's keys
in schema order, counting what it leaves out in ``stats``.

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
    ) -> None:
        self.aggregation = aggregation
        self.options = options
        self.pseudonym = pseudonym
        self.queue_names = queue_names
        self.likert_keys = likert_keys or []
        self.stats: Counter[str] = Counter()
        # Duplicates written so far: a view that lists them explains them in its description.
        self.listed_duplicates = 0
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
        return row


def _chosen_rejected(event: PairEvent) -> tuple[CandidateInfo, CandidateInfo]:
    return (event.x, event.y) if event.strength < 0 else (event.y, event.x)
