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


# Routed to the ``gpu`` queue by CELERY_TASK_ROUTES (it trains a model). acks_late: a check whose
# worker died is delivered again and starts over (``reward_check_execute`` runs queued or running checks).
@shared_task(acks_late=True, reject_on_worker_lost=True)
def reward_check_task(reward_check_id: int) -> None:
    """Train and score one reward check. Does nothing for a missing or finished check."""
    from export.models import RewardCheck
    from export.services.reward_checks import reward_check_execute

    check = RewardCheck.objects.select_related("export_run").filter(pk=reward_check_id).first()
    if check is None or check.status in (RewardCheck.Status.DONE, RewardCheck.Status.FAILED):
        return
    reward_check_execute(reward_check=check)
