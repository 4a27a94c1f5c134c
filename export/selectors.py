"""Reads for exports: which judgments a snapshot contains, streamed as records, and the runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    TextField,
)
from django.db.models.functions import Cast
from django.db.models.sql.compiler import SQLCompiler
from django.shortcuts import get_object_or_404

from comparisons.models import Candidate, ComparisonCandidate, Prompt
from export.models import ExportRun
from export.records import CandidateInfo, ExportDataError, JudgmentRecord, PromptInfo, agreement
from labeling.errors import ApplicationError, Conflict
from labeling.models import Criterion, Judgment, Queue, Rubric

_SIZE = F("assignment__item__comparison__size")

# Judgments read per chunk: bounds memory; prompts and candidates are fetched once per chunk.
CHUNK_SIZE = 2000
# The same for the columnar path (export.columnar), whose rows are plain tuples: 10,000 is as fast
# as 20,000 and peaks ~15 MB lower (bench_export).
COLUMN_CHUNK_SIZE = 10_000

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
        qs = qs.filter(assignment__rater__is_active=True)
    return qs.order_by("assignment__item__comparison_id", "id")


def _prompt_ids_with_tags(tags: list[str]) -> Any:
    if connection.features.supports_json_field_contains:
        condition = Q()
        for tag in tags:
            condition |= Q(tags__contains=[tag])
        return Prompt.objects.filter(condition).values("id")
    # SQLite has no JSON containment: read the tag lists (prompts, not judgments: a bounded read).
    wanted = set(tags)
    return [pk for pk, ptags in Prompt.objects.values_list("id", "tags") if wanted & set(ptags or [])]


def export_records(
    *,
    filters: dict[str, Any],
    full: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Iterator[JudgmentRecord]:
    """Stream the filtered judgments as records, ordered by comparison then judgment id.

    Reads the judgments through one server-side cursor on PostgreSQL (``iterator``) in chunks of
    CHUNK_SIZE; per chunk it fetches the chunk's prompts and candidates in one query each, so the
    query count grows with chunks, never with rows, and memory stays bounded by the chunk size.
    ``full=False`` skips the columns only the lossless views read (criteria, rationale, ...).
    ``on_chunk(n)`` is called after each chunk with the number of judgments read so far.
    Raises ExportDataError naming the judgment when stored data is inconsistent.
    """
    fields = _BASE_FIELDS + (_FULL_FIELDS if full else ())
    rows = export_judgment_queryset(filters=filters).values_list(*fields).iterator(chunk_size=CHUNK_SIZE)
    done = 0
    while True:
        chunk = list(islice(rows, CHUNK_SIZE))
        if not chunk:
            return
        yield from _chunk_records(chunk, full=full)
        done += len(chunk)
        if on_chunk is not None:
            on_chunk(done)


@dataclass
class PairChunk:
    """Judgments as plain tuples, whole comparisons only, with their prompts and candidates decoded
    once (the same :class:`PromptInfo` / :class:`CandidateInfo` the records use).

    A row is ``(id, preference, unranked, rubric_id, rater_id, comparison_id, prompt_id,
    shown_order)``: ``unranked`` is "ranking IS NULL" (ranked judgments go through the record
    path) and ``shown_order`` the stored JSON text, parsed in bulk by the caller, never per row.
    """

    rows: list[tuple[Any, ...]]
    prompts: dict[int, PromptInfo]
    candidates: dict[int, list[CandidateInfo]]
    done: int  # judgments read so far, this chunk included


def export_pair_chunks(*, filters: dict[str, Any], chunk_size: int | None = None) -> Iterator[PairChunk]:
    """The filtered judgments as column tuples, in the order of :func:`export_records`, for ``export.columnar``.

    One server-side cursor (PostgreSQL) with no per-row JSON decoding. Each chunk holds about
    ``chunk_size`` (default COLUMN_CHUNK_SIZE) judgments and ends at a comparison boundary: the
    judgments of the last comparison read are carried into the next chunk, so a comparison is
    never cut in two.
    """
    chunk_size = chunk_size or COLUMN_CHUNK_SIZE
    qs = (
        export_judgment_queryset(filters=filters)
        .annotate(
            x_unranked=ExpressionWrapper(Q(ranking__isnull=True), output_field=BooleanField()),
            x_shown=Cast("assignment__shown_order", output_field=TextField()),
        )
        .values_list(
            "id",
            "preference",
            "x_unranked",
            "rubric_id",
            "assignment__rater_id",
            "assignment__item__comparison_id",
            "assignment__item__comparison__prompt_id",
            "x_shown",
        )
    )
    rows = qs.iterator(chunk_size=chunk_size)
    carry: list[tuple[Any, ...]] = []
    done = 0
    while True:
        block = list(islice(rows, chunk_size))
        if not block:
            break
        done += len(block)
        if carry:
            block = carry + block
        last = block[-1][5]
        cut = len(block)
        while cut and block[cut - 1][5] == last:
            cut -= 1
        carry = block[cut:]
        if cut:
            yield _pair_chunk(block[:cut], done - len(carry))
    if carry:
        yield _pair_chunk(carry, done)


def _pair_chunk(rows: list[tuple[Any, ...]], done: int) -> PairChunk:
    return PairChunk(
        rows=rows,
        prompts=_prompts({row[6] for row in rows}, full=False),
        candidates=_candidates({row[5] for row in rows}, full=False),
        done=done,
    )


def export_comparison_records(
    *, filters: dict[str, Any], comparison_ids: list[int], full: bool = False
) -> list[JudgmentRecord]:
    """The filtered judgments of some comparisons as records (the record path, for ``export.columnar``)."""
    fields = _BASE_FIELDS + (_FULL_FIELDS if full else ())
    rows = list(
        export_judgment_queryset(filters=filters)
        .filter(IdIn("assignment__item__comparison_id", comparison_ids))
        .values_list(*fields)
    )
    return list(_chunk_records(rows, full=full))


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

    @property
    def mean_agreement(self) -> float | None:
        if not self.agreement_comparisons:
            return None
        return round(self.agreement_sum / self.agreement_comparisons, 4)


def export_record_groups(
    *,
    filters: dict[str, Any],
    full: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    stats: GroupStats | None = None,
) -> Iterator[list[JudgmentRecord]]:
    """The filtered judgments grouped by comparison, with ``min_judgments`` / ``min_agreement`` applied.

    One comparison's judgments are held at a time, so memory does not grow with the export.
    ``stats`` (if given) counts judgments, comparisons, what the per-comparison filters dropped,
    and the agreement of comparisons with two or more judgments.
    """
    stats = stats if stats is not None else GroupStats()
    min_judgments = filters.get("min_judgments", 1)
    min_agreement = filters.get("min_agreement", 0.0)
    group: list[JudgmentRecord] = []
    for record in export_records(filters=filters, full=full, on_chunk=on_chunk):
        if group and record.comparison_id != group[0].comparison_id:
            if _keep(group, stats, min_judgments, min_agreement):
                yield group
            group = []
        group.append(record)
    if group and _keep(group, stats, min_judgments, min_agreement):
        yield group


def _keep(group: list[JudgmentRecord], stats: GroupStats, min_judgments: int, min_agreement: float) -> bool:
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
    for record in group:
        stats.rubric_ids.add(record.rubric_id)
        stats.rater_ids.add(record.rater_user_id)
    return True


def _chunk_records(chunk: list[tuple[Any, ...]], *, full: bool) -> Iterator[JudgmentRecord]:
    prompts = _prompts({row[9] for row in chunk}, full=full)
    candidates = _candidates({row[8] for row in chunk}, full=full)
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


def _prompts(ids: set[int], *, full: bool = True) -> dict[int, PromptInfo]:
    """The prompts by id; their tags only when ``full`` (only the lossless view reads them)."""
    out: dict[int, PromptInfo] = {}
    fields = ["id", "external_id", "messages", "source", "content_hash"] + (["tags"] if full else [])
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


# --- facts for the dataset card and the estimate ------------------------------------------------


def export_rubrics(*, rubric_ids: set[int]) -> list[Rubric]:
    """The rubric versions used, with their criteria, by name and version."""
    return list(
        Rubric.objects.filter(pk__in=rubric_ids).prefetch_related("criteria").order_by("name", "version")
    )


def export_likert_keys(*, filters: dict[str, Any]) -> list[str]:
    """Keys of the Likert criteria in the rubrics of the filtered judgments, sorted."""
    rubric_ids = export_judgment_queryset(filters=filters).order_by().values("rubric_id").distinct()
    return sorted(
        set(
            Criterion.objects.filter(rubric_id__in=rubric_ids, kind=Criterion.Kind.LIKERT).values_list(
                "key", flat=True
            )
        )
    )


def export_queue_names() -> dict[int, str]:
    return dict(Queue.objects.values_list("id", "name"))


def export_estimate(
    *, filters: dict[str, Any], format: str, aggregation: str, pairs: bool = False
) -> dict[str, Any]:
    """A quick row estimate for validated filters: counts in SQL, no rows read.

    ``rows`` is an upper bound: ties and the per-comparison filters (``min_judgments``,
    ``min_agreement``) are applied only when the export runs.
    """
    qs = export_judgment_queryset(filters=filters).order_by()
    counts = qs.aggregate(
        judgments=Count("id"),
        rankings=Count("id", filter=Q(ranking__isnull=False)),
        comparisons=Count("assignment__item__comparison_id", distinct=True),
        ranking_pairs=Sum(
            (_SIZE * (_SIZE - 1)) / 2,
            filter=Q(ranking__isnull=False),
        ),
    )
    judgments = counts["judgments"] or 0
    rankings = counts["rankings"] or 0
    ranking_pairs = int(counts["ranking_pairs"] or 0)
    if format in ("native", "ratings"):
        rows = judgments
    elif format == "rankings":
        rows = ranking_pairs if pairs else rankings
    elif aggregation == "raw":
        rows = judgments - rankings + ranking_pairs
    else:
        comparison_pairs = (
            qs.values("assignment__item__comparison_id")
            .distinct()
            .aggregate(n=Sum((_SIZE * (_SIZE - 1)) / 2))["n"]
        )
        rows = int(comparison_pairs or 0)
    return {
        "judgments": judgments,
        "rankings": rankings,
        "comparisons": counts["comparisons"] or 0,
        "rows": rows,
        "upper_bound": True,
    }


# --- runs ---------------------------------------------------------------------------------------


def export_run_list() -> QuerySet[ExportRun]:
    """All runs, newest first. Researchers and admins see every run (exports are shared snapshots)."""
    return ExportRun.objects.select_related("created_by").order_by("-id")


def export_run_get(*, export_run_id: int) -> ExportRun:
    """One run, or 404."""
    return get_object_or_404(ExportRun.objects.select_related("created_by"), pk=export_run_id)


def export_run_folder(*, export_run: ExportRun) -> Path:
    """The finished run's snapshot folder. Conflict (409) while the run is not finished; 410 if gone."""
    if export_run.status != ExportRun.Status.SUCCEEDED:
        raise Conflict(
            f"Export {export_run.pk} is {export_run.status}; its files can be downloaded once it has succeeded.",
            field="status",
        )
    root = Path(settings.PREFLAB_EXPORT_ROOT).resolve()
    path = (root / export_run.file_path).resolve()
    # file_path is written by export_run_execute, but never serve anything outside the root.
    if not path.is_relative_to(root) or not path.is_dir():
        raise ApplicationError(
            f"The files of export {export_run.pk} are no longer on disk; create a new export.",
            status_code=410,
        )
    return path


def export_run_file(*, export_run: ExportRun, relative: str) -> Path:
    """One file of a finished run, by its path in ``files`` (404 naming the file otherwise)."""
    folder = export_run_folder(export_run=export_run)
    known = {f["path"] for f in export_run.files}
    if relative not in known:
        raise ApplicationError(
            f"Export {export_run.pk} has no file {relative!r}; it has: {', '.join(sorted(known))}.",
            field="file",
            status_code=404,
        )
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise ApplicationError(f"The file {relative!r} of export {export_run.pk} is gone.", status_code=410)
    return path
