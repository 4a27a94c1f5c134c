"""Which judgments an export contains, and the batched reads of their prompts and candidates.

:func:`export_judgment_queryset` applies every filter SQL can answer (the per-comparison ones are
applied while streaming, in ``record_groups``). ``_prompts``, ``_candidates`` and ``_duplicates``
read the rows of one chunk by id in a bounded number of queries (``_rows_by_ids``): the query count of an export
grows with its chunks, never with its rows. Both the record path (``record_groups``) and the
columnar path (``pair_chunks``) decode prompts and candidates through them, into the same
:class:`PromptInfo` / :class:`CandidateInfo`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler

from comparisons.models import Candidate, ComparisonCandidate, ComparisonDuplicate, Prompt
from export.records import CandidateInfo, ExportDataError, PromptInfo
from labeling.models import Judgment
from labeling.selectors.pauses import paused_rater_exists


class IdIn(Func):
    """``column IN ids`` as a filter; on PostgreSQL one array parameter (``= ANY(%s)``).

    A chunk's prompts and candidates are thousands of ids: one placeholder each costs psycopg
    more time to parse than the query costs PostgreSQL to run.
    """

    output_field = BooleanField()
    conditional = True

    def __init__(self, column: str, ids: list[int]) -> None:
        super().__init__(F(column))
        self.ids = ids

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column, params = compiler.compile(self.get_source_expressions()[0])
        if not self.ids:
            return "1 = 0", ()
        if connection.vendor == "postgresql":
            return f"{column} = ANY(%s::bigint[])", (*params, self.ids)
        return f"{column} IN ({', '.join(['%s'] * len(self.ids))})", (*params, *self.ids)


def export_judgment_queryset(*, filters: dict[str, Any]) -> QuerySet[Judgment]:
    """Judgments matching already-validated filters (``export.spec.export_filters_clean``).

    Applies everything that SQL can answer; ``min_judgments`` and ``min_agreement`` need the
    judgments of a comparison together and are applied while streaming
    (:func:`export_record_groups`). Ordered by comparison, then judgment id.
    """
    qs = Judgment.objects.all()
    if filters.get("queues"):
        qs = qs.filter(assignment__item__queue_id__in=filters["queues"])
    if filters.get("modes"):
        qs = qs.filter(assignment__item__queue__template__mode__in=filters["modes"])
    if filters.get("rubric_versions"):
        qs = qs.filter(rubric_id__in=filters["rubric_versions"])
    if filters.get("since"):
        qs = qs.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(created_at__lt=filters["until"])
    if filters.get("generators"):
        other_generator = ComparisonCandidate.objects.filter(
            comparison_id=OuterRef("assignment__item__comparison_id")
        ).exclude(candidate__generator__name__in=filters["generators"])
        qs = qs.filter(~Exists(other_generator))
    if filters.get("tags"):
        qs = qs.filter(assignment__item__comparison__prompt_id__in=_prompt_ids_with_tags(filters["tags"]))
    if filters.get("exclude_flagged"):
        flagged = Judgment.objects.filter(
            assignment__item__comparison_id=OuterRef("assignment__item__comparison_id")
        ).exclude(flags=[])
        qs = qs.filter(~Exists(flagged))
    if filters.get("exclude_gold"):
        qs = qs.filter(assignment__item__is_gold=False)
    if filters.get("exclude_paused_raters"):
        qs = qs.filter(assignment__rater__is_active=True).exclude(paused_rater_exists())
    return qs.order_by("assignment__item__comparison_id", "id")


def export_paused_left_out(*, filters: dict[str, Any]) -> int:
    """How many judgments ``exclude_paused_raters`` leaves out of what the other filters keep
    (deactivated users, raters paused from the judgment's queue); 0 when the filter is off."""
    if not filters.get("exclude_paused_raters"):
        return 0
    others = export_judgment_queryset(filters={**filters, "exclude_paused_raters": False})
    return others.order_by().count() - export_judgment_queryset(filters=filters).order_by().count()


def _prompt_ids_with_tags(tags: list[str]) -> Any:
    if connection.features.supports_json_field_contains:
        condition = Q()
        for tag in tags:
            condition |= Q(tags__contains=[tag])
        return Prompt.objects.filter(condition).values("id")
    # SQLite has no JSON containment: read the tag lists (prompts, not judgments: a bounded read).
    wanted = set(tags)
    return [pk for pk, ptags in Prompt.objects.values_list("id", "tags") if wanted & set(ptags or [])]


def _prompts(ids: set[int], *, full: bool = True) -> dict[int, PromptInfo]:
    """The prompts by id, with their tags (the lossless view writes them; every export counts its
    judgments per tag for the card's composition, ``export.composition``). ``full`` is accepted
    for the callers' symmetry with ``_candidates``."""
    out: dict[int, PromptInfo] = {}
    fields = ["id", "external_id", "messages", "source", "content_hash", "tags"]
    for pk, external_id, messages, source, content_hash, *tags in _rows_by_ids(
        Prompt.objects.all(), ids, fields
    ):
        try:
            clean = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        except (TypeError, KeyError) as exc:
            raise ExportDataError(f"prompt {external_id or pk}: its messages are malformed ({exc!r})")
        out[pk] = PromptInfo(
            pk,
            external_id or str(pk),
            clean,
            source,
            [str(t) for t in (tags[0] if tags else None) or []],
            content_hash,
        )
    return out


def _candidates(comparison_ids: set[int], *, full: bool) -> dict[int, list[CandidateInfo]]:
    """The candidates of each comparison, in position order.

    Two index reads (the members, then the candidates by id) rather than one join: for a chunk's
    thousands of ids PostgreSQL would answer the join by scanning the whole candidate table.
    """
    fields = ["id", "text", "generator__name"]
    if full:
        fields += ["model_revision", "sampling", "seed", "finish_reason"]
    members = list(
        _rows_by_ids(
            ComparisonCandidate.objects.order_by("comparison_id", "position"),
            comparison_ids,
            ["comparison_id", "position", "candidate_id"],
        )
    )
    wanted = {row[2] for row in members}
    texts = {row[0]: row[1:] for row in _rows_by_ids(Candidate.objects.all(), wanted, fields)}
    out: dict[int, list[CandidateInfo]] = {}
    for comparison_id, position, candidate_id in members:
        text, generator, *rest = texts[candidate_id]
        out.setdefault(comparison_id, []).append(
            CandidateInfo(candidate_id, position, text, generator, *rest)
        )
    return out


def _duplicates(members: dict[int, list[CandidateInfo]], *, full: bool) -> dict[int, list[CandidateInfo]]:
    """The duplicates of each of these comparisons (their ``members`` by comparison id), each with
    the position of the shown copy it repeats; by position, then candidate id.

    One index read of the duplicate rows, and one of their candidates when there are any.
    Raises ExportDataError naming the comparison when a duplicate's copy is not one of its members.
    """
    fields = ["id", "text", "generator__name"]
    if full:
        fields += ["model_revision", "sampling", "seed", "finish_reason"]
    rows = list(
        _rows_by_ids(
            ComparisonDuplicate.objects.all(),
            set(members),
            ["comparison_id", "kept_id", "candidate_id"],
        )
    )
    if not rows:
        return {}
    texts = {row[0]: row[1:] for row in _rows_by_ids(Candidate.objects.all(), {r[2] for r in rows}, fields)}
    out: dict[int, list[CandidateInfo]] = {}
    for comparison_id, kept_id, candidate_id in rows:
        position = next((c.position for c in members[comparison_id] if c.id == kept_id), None)
        if position is None:
            raise ExportDataError(
                f"comparison {comparison_id}: candidate {candidate_id} is recorded as a copy of "
                f"candidate {kept_id}, which the comparison does not show"
            )
        text, generator, *rest = texts[candidate_id]
        out.setdefault(comparison_id, []).append(
            CandidateInfo(candidate_id, position, text, generator, *rest)
        )
    for duplicates in out.values():
        duplicates.sort(key=lambda c: (c.position, c.id))
    return out


# Ids per query when reading rows by id (SQLite allows 32,766 parameters per statement).
_ID_BATCH = 5000


def _rows_by_ids(qs: QuerySet[Any], ids: set[int], fields: list[str]) -> Iterator[tuple[Any, ...]]:
    """``qs.values_list(*fields)`` for the rows whose ``fields[0]`` is in ``ids``, in id batches.

    The ids of one chunk are usually dense (judgments are read in comparison order), and an
    index range scan is then the cheapest read; rows in the range but not in ``ids`` are dropped.
    Sparse ids go as one array parameter on PostgreSQL (:class:`IdIn`). Batches follow the ids
    in ascending order, so an ordering by ``fields[0]`` holds across batches.
    """
    column = fields[0]
    ordered = sorted(ids)
    for start in range(0, len(ordered), _ID_BATCH):
        batch = ordered[start : start + _ID_BATCH]
        if batch[-1] - batch[0] < 2 * len(batch):
            where: Any = Q(**{f"{column}__gte": batch[0], f"{column}__lte": batch[-1]})
        else:
            where = IdIn(column, batch)
        for row in qs.filter(where).values_list(*fields):
            if row[0] in ids:
                yield row
