"""Reads for exports: which judgments a snapshot contains, and the runs themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from comparisons.models import ComparisonCandidate
from export.models import ExportRun
from labeling.apis_common import ApplicationError, Conflict
from labeling.models import Judgment


def export_judgment_queryset(*, filters: dict[str, Any]) -> QuerySet[Judgment]:
    """Judgments matching already-validated filters, ordered by id, with everything a writer reads.

    ``filters`` is the normalized form from ``export_filters_clean``: ``queues`` (ids),
    ``since`` (inclusive) and ``until`` (exclusive) as aware datetimes or ISO strings, on the
    judgment's ``created_at``. Rows come with their assignment, item, comparison and prompt joined,
    and the comparison's candidates prefetched, so iterating issues a fixed number of queries per
    chunk, never one per row.
    """
    qs = Judgment.objects.all()
    if filters.get("queues"):
        qs = qs.filter(assignment__item__queue_id__in=filters["queues"])
    if filters.get("since"):
        qs = qs.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(created_at__lt=filters["until"])
    return (
        qs.select_related("assignment__item__comparison__prompt")
        .prefetch_related(
            Prefetch(
                "assignment__item__comparison__members",
                queryset=ComparisonCandidate.objects.select_related("candidate").order_by("position"),
            )
        )
        .order_by("id")
    )


def export_run_list() -> QuerySet[ExportRun]:
    """All runs, newest first. Researchers and admins see every run (exports are shared snapshots)."""
    return ExportRun.objects.select_related("created_by").order_by("-id")


def export_run_get(*, export_run_id: int) -> ExportRun:
    """One run, or 404."""
    return get_object_or_404(ExportRun.objects.select_related("created_by"), pk=export_run_id)


def export_run_file(*, export_run: ExportRun) -> Path:
    """The finished run's file. Conflict (409) while the run is not finished; 410 if the file is gone."""
    if export_run.status != ExportRun.Status.SUCCEEDED:
        raise Conflict(
            f"Export {export_run.pk} is {export_run.status}; its file can be downloaded once it has succeeded.",
            field="status",
        )
    root = Path(settings.PREFLAB_EXPORT_ROOT).resolve()
    path = (root / export_run.file_path).resolve()
    # file_path is written by export_run_execute, but never serve anything outside the root.
    if not path.is_relative_to(root) or not path.is_file():
        raise ApplicationError(
            f"The file of export {export_run.pk} is no longer on disk; create a new export.", status_code=410
        )
    return path
