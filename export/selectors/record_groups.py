"""The filtered judgments streamed as records (the record path), grouped by comparison.

:func:`export_records` reads the judgments in chunks of CHUNK_SIZE through one server-side cursor
(PostgreSQL), ordered by comparison then judgment id, and checks each against its comparison
(ExportDataError naming the judgment otherwise). :func:`export_record_groups` holds one
comparison's records at a time and applies the per-comparison filters (``min_judgments``, then
``min_agreement``), counting what it saw in :class:`GroupStats`; ``export.columnar`` counts its
comparisons through :func:`keep_group`, the same rule. For the aggregated views it yields each
prompt's records together instead (``pool=True``): they pool votes per candidate pair across
comparisons and apply ``min_judgments`` / ``min_agreement`` to each pooled pair themselves
(``export.formats.base.PairView.events``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from export.composition import Composition
from export.records import ExportDataError, JudgmentRecord, agreement
from export.selectors.judgments import IdIn, _candidates, _duplicates, _prompts, export_judgment_queryset

# Judgments read per chunk: bounds memory; prompts and candidates are fetched once per chunk.
CHUNK_SIZE = 2000

# Columns every view needs, then the ones only the lossless views read.
_BASE_FIELDS = (
    "id",
    "preference",
    "ranking",
    "rubric_id",
    "assignment__shown_order",
    "assignment__rater_id",
    "assignment__item__queue_id",
    "assignment__item__is_gold",
    "assignment__item__comparison_id",
    "assignment__item__comparison__prompt_id",
)
_FULL_FIELDS = (
    "created_at",
    "criteria",
    "flags",
    "rationale",
    "rewrite",
    "active_seconds",
    "assignment__item__gold_answer",
)


def export_records(
    *,
    filters: dict[str, Any],
    full: bool = True,
    duplicates: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    by_prompt: bool = False,
) -> Iterator[JudgmentRecord]:
    """Stream the filtered judgments as records, ordered by comparison then judgment id (with
    ``by_prompt``, by prompt first: every comparison of a prompt together).

    Reads the judgments through one server-side cursor on PostgreSQL (``iterator``) in chunks of
    CHUNK_SIZE; per chunk it fetches the chunk's prompts and candidates in one query each, so the
    query count grows with chunks, never with rows, and memory stays bounded by the chunk size.
    ``full=False`` skips the columns only the lossless views read (criteria, rationale, ...).
    ``duplicates=True`` also reads each comparison's duplicates (one more query per chunk, two
    when it has any) into ``JudgmentRecord.duplicates``, for the views that list them.
    ``on_chunk(n)`` is called after each chunk with the number of judgments read so far.
    Raises ExportDataError naming the judgment when stored data is inconsistent.
    """
    fields = _BASE_FIELDS + (_FULL_FIELDS if full else ())
    qs = export_judgment_queryset(filters=filters)
    if by_prompt:
        qs = qs.order_by("assignment__item__comparison__prompt_id", "assignment__item__comparison_id", "id")
    rows = qs.values_list(*fields).iterator(chunk_size=CHUNK_SIZE)
    done = 0
    while True:
        chunk = list(islice(rows, CHUNK_SIZE))
        if not chunk:
            return
        yield from _chunk_records(chunk, full=full, duplicates=duplicates)
        done += len(chunk)
        if on_chunk is not None:
            on_chunk(done)


def export_comparison_records(
    *, filters: dict[str, Any], comparison_ids: list[int], full: bool = False, duplicates: bool = False
) -> list[JudgmentRecord]:
    """The filtered judgments of some comparisons as records (the record path, for ``export.columnar``)."""
    fields = _BASE_FIELDS + (_FULL_FIELDS if full else ())
    rows = list(
        export_judgment_queryset(filters=filters)
        .filter(IdIn("assignment__item__comparison_id", comparison_ids))
        .values_list(*fields)
    )
    return list(_chunk_records(rows, full=full, duplicates=duplicates))


def keep_group(group: list[JudgmentRecord], stats: GroupStats, *, filters: dict[str, Any]) -> bool:
    """The per-comparison filters for one comparison's records, counted in ``stats``."""
    return _keep(group, stats, filters.get("min_judgments", 1), filters.get("min_agreement", 0.0))


@dataclass
class GroupStats:
    """What streaming the groups saw; filled in as the groups are consumed."""

    judgments: int = 0
    comparisons: int = 0
    dropped_min_judgments: int = 0
    dropped_min_agreement: int = 0
    judgments_dropped: int = 0
    agreement_sum: float = 0.0
    agreement_comparisons: int = 0
    rubric_ids: set[int] = field(default_factory=set)
    rater_ids: set[int] = field(default_factory=set)
    #: Who labeled what, per prompt tag, over the kept comparisons (``export.composition``).
    composition: Composition = field(default_factory=Composition)

    @property
    def mean_agreement(self) -> float | None:
        if not self.agreement_comparisons:
            return None
        return round(self.agreement_sum / self.agreement_comparisons, 4)


def export_record_groups(
    *,
    filters: dict[str, Any],
    full: bool = True,
    duplicates: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    stats: GroupStats | None = None,
    pool: bool = False,
) -> Iterator[list[JudgmentRecord]]:
    """The filtered judgments grouped by comparison, with ``min_judgments`` / ``min_agreement`` applied.

    One comparison's judgments are held at a time, so memory does not grow with the export.
    ``stats`` (if given) counts judgments, comparisons, what the per-comparison filters dropped,
    and the agreement of comparisons with two or more judgments.

    ``pool=True`` (aggregated views): one group per prompt, its comparisons in id order, with no
    per-comparison filter (the view filters each pooled candidate pair); each comparison is still
    counted in ``stats``, its raters and rubrics excepted (the view knows which rows it kept).
    """
    stats = stats if stats is not None else GroupStats()
    min_judgments = 1 if pool else filters.get("min_judgments", 1)
    min_agreement = 0.0 if pool else filters.get("min_agreement", 0.0)
    group: list[JudgmentRecord] = []
    pooled: list[JudgmentRecord] = []
    records = export_records(
        filters=filters, full=full, duplicates=duplicates, on_chunk=on_chunk, by_prompt=pool
    )
    for record in records:
        if group and record.comparison_id != group[0].comparison_id:
            if _keep(group, stats, min_judgments, min_agreement, ids=not pool):
                if not pool:
                    yield group
                elif record.prompt.id != group[0].prompt.id:
                    yield pooled + group
                    pooled = []
                else:
                    pooled += group
            group = []
        group.append(record)
    if group and _keep(group, stats, min_judgments, min_agreement, ids=not pool):
        yield pooled + group if pool else group


def _keep(
    group: list[JudgmentRecord],
    stats: GroupStats,
    min_judgments: int,
    min_agreement: float,
    *,
    ids: bool = True,
) -> bool:
    stats.comparisons += 1
    stats.judgments += len(group)
    if len(group) < min_judgments:
        stats.dropped_min_judgments += 1
        stats.judgments_dropped += len(group)
        return False
    share = agreement(group) if len(group) > 1 else 1.0
    if share < min_agreement:
        stats.dropped_min_agreement += 1
        stats.judgments_dropped += len(group)
        return False
    if len(group) > 1:
        stats.agreement_sum += share
        stats.agreement_comparisons += 1
    stats.composition.add_comparison(
        group[0].prompt.tags, (r.rater_user_id for r in group), share if len(group) > 1 else None
    )
    if not ids:
        return True
    for record in group:
        stats.rubric_ids.add(record.rubric_id)
        stats.rater_ids.add(record.rater_user_id)
    return True


def _chunk_records(chunk: list[tuple[Any, ...]], *, full: bool, duplicates: bool) -> Iterator[JudgmentRecord]:
    prompts = _prompts({row[9] for row in chunk}, full=full)
    candidates = _candidates({row[8] for row in chunk}, full=full)
    copies = _duplicates(candidates, full=full) if duplicates else {}
    for row in chunk:
        (
            jid,
            preference,
            ranking,
            rubric_id,
            shown_ids,
            rater_id,
            queue_id,
            is_gold,
            comparison_id,
            prompt_id,
        ) = row[:10]
        members = candidates.get(comparison_id, [])
        by_id = {c.id: c for c in members}
        try:
            shown = [by_id[cid] for cid in shown_ids]
        except (KeyError, TypeError):
            raise ExportDataError(
                f"judgment {jid}: the shown order {shown_ids!r} does not match the candidates of "
                f"comparison {comparison_id}"
            )
        if len(shown) != len(members) or len(shown) < 2:
            raise ExportDataError(
                f"judgment {jid}: {len(shown)} shown candidates for the {len(members)} of comparison "
                f"{comparison_id}"
            )
        if ranking is None and (preference is None or len(shown) != 2):
            raise ExportDataError(f"judgment {jid}: a preference needs exactly 2 shown candidates")
        if ranking is not None:
            _check_ranking(jid, ranking, len(shown))
        record = JudgmentRecord(
            id=jid,
            comparison_id=comparison_id,
            prompt=prompts[prompt_id],
            candidates=members,
            shown=shown,
            preference=preference if ranking is None else None,
            ranking=ranking,
            rater_user_id=rater_id,
            queue_id=queue_id,
            is_gold=is_gold,
            rubric_id=rubric_id,
            duplicates=copies.get(comparison_id, []),
        )
        if full:
            (
                record.created_at,
                record.criteria,
                record.flags,
                record.rationale,
                record.rewrite,
                record.active_seconds,
                record.gold_answer,
            ) = row[10:]
        yield record


def _check_ranking(jid: int, ranking: Any, size: int) -> None:
    labels = "ABCDEFGHI"[:size]
    flat = (
        [label for group in ranking for label in group]
        if isinstance(ranking, list) and all(isinstance(g, list) and g for g in ranking)
        else None
    )
    if flat is None or sorted(flat) != sorted(labels):
        raise ExportDataError(f"judgment {jid}: ranking {ranking!r} does not place each of {labels} once")
