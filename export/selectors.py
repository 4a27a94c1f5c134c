"""Reads for exports: which judgments a snapshot contains, streamed as records, and the runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404

from comparisons.models import ComparisonCandidate, Prompt
from export.models import ExportRun
from export.records import CandidateInfo, ExportDataError, JudgmentRecord, PromptInfo, agreement
from labeling.apis_common import ApplicationError, Conflict
from labeling.models import Criterion, Judgment, Queue, Rubric

_SIZE = F("assignment__item__comparison__size")

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
    prompts = _prompts({row[9] for row in chunk})
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


def _prompts(ids: set[int]) -> dict[int, PromptInfo]:
    out: dict[int, PromptInfo] = {}
    for pk, external_id, messages, source, tags, content_hash in Prompt.objects.filter(
        pk__in=ids
    ).values_list("id", "external_id", "messages", "source", "tags", "content_hash"):
        try:
            clean = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        except (TypeError, KeyError) as exc:
            raise ExportDataError(f"prompt {external_id or pk}: its messages are malformed ({exc!r})")
        out[pk] = PromptInfo(
            pk, external_id or str(pk), clean, source, [str(t) for t in tags or []], content_hash
        )
    return out


def _candidates(comparison_ids: set[int], *, full: bool) -> dict[int, list[CandidateInfo]]:
    fields = ["comparison_id", "position", "candidate_id", "candidate__text", "candidate__generator__name"]
    if full:
        fields += [
            "candidate__model_revision",
            "candidate__sampling",
            "candidate__seed",
            "candidate__finish_reason",
        ]
    out: dict[int, list[CandidateInfo]] = {}
    rows = (
        ComparisonCandidate.objects.filter(comparison_id__in=comparison_ids)
        .order_by("comparison_id", "position")
        .values_list(*fields)
    )
    for row in rows:
        out.setdefault(row[0], []).append(CandidateInfo(row[2], row[1], row[3], row[4], *row[5:]))
    return out


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
