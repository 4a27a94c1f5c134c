"""Celery doorways for exports.

They run on the ``default`` queue: CELERY_TASK_DEFAULT_QUEUE, not a per-task ``queue`` option,
which Celery deprecates.
"""

from __future__ import annotations

from celery import shared_task

from export.models import ExportRun
from export.services.runs import export_run_execute


@shared_task
def export_run_task(export_run_id: int) -> None:
    """Write one export run. Does nothing for a missing or finished run, so redelivery is harmless."""
    export_run = ExportRun.objects.filter(pk=export_run_id).first()
    if export_run is None or export_run.status in (ExportRun.Status.SUCCEEDED, ExportRun.Status.FAILED):
        return
    export_run_execute(export_run=export_run)
