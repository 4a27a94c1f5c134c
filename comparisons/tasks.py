"""Celery doorways for imports, on the ``default`` queue (CELERY_TASK_DEFAULT_QUEUE)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from comparisons.models import ImportJob
from comparisons.services.import_jobs import import_job_execute

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def import_job_task(import_job_id: int) -> None:
    """Run one import job. Does nothing for a missing or finished job, so redelivery is harmless;
    a job whose worker died mid-run is run again from the start (its transaction never committed)."""
    import_job = ImportJob.objects.filter(pk=import_job_id).first()
    if import_job is None or import_job.finished:
        return
    import_job_execute(import_job=import_job)


@worker_ready.connect
def _resume_interrupted_imports(sender: Any = None, **kwargs: Any) -> None:
    """On a filesystem broker a message taken by a worker that died is gone: a starting worker
    that serves the ``default`` queue enqueues the jobs left running again. Redis and RabbitMQ
    redeliver unacked messages themselves, so nothing runs there."""
    if sender is None or not str(sender.app.conf.broker_url or "").startswith("filesystem"):
        return
    queues = {q.name for q in getattr(sender.task_consumer, "queues", [])} if sender.task_consumer else set()
    if queues and "default" not in queues:
        return
    from django.db import transaction

    from comparisons.services.import_jobs import import_job_resume_all

    with transaction.atomic():
        count = import_job_resume_all()
    if count:
        logger.info("re-enqueued %d interrupted import job(s) after a worker restart", count)
