"""Celery doorways of the model runner (routed to the ``gpu`` queue by settings)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from model_runner.models import GenerationJob, Generator

logger = logging.getLogger(__name__)


# Sent to its generator's queue (``Generator.queue``, by ``_enqueue``); else routed to ``gpu`` by
# CELERY_TASK_ROUTES ("model_runner.tasks.*"). Celery 5.7 deprecates the per-task ``queue`` attribute.
# acks_late + reject_on_worker_lost: a killed worker's batch is redelivered.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def generation_batch_task(self: Any, job_id: int, generator_id: int, prompt_ids: list[int]) -> int:
    """Generate one batch of a job. Redelivery after a killed worker is safe: the service skips
    what exists and the unique key on candidates rejects duplicates."""
    job = GenerationJob.objects.filter(pk=job_id).first()
    generator = Generator.objects.filter(pk=generator_id).first()
    if job is None or generator is None:
        return 0
    if job.status in {
        GenerationJob.Status.CANCELLED,
        GenerationJob.Status.SUCCEEDED,
        GenerationJob.Status.FAILED,
    }:
        return 0
    # Imported here so the web process, which enqueues this task, never loads the runner's worker path.
    from model_runner.services import generation_batch_run

    return generation_batch_run(
        job=job, generator=generator, prompt_ids=prompt_ids, worker=str(self.request.hostname or "")
    )


# On ``default`` (CELERY_TASK_ROUTES names it before the model_runner.tasks.* rule); beat runs it
# every minute. It loads no model, so no GPU worker has to be free for it.
@shared_task
def generation_batches_stalled_task() -> int:
    """Send again the batches whose worker stopped making progress (``batch_claims``)."""
    from model_runner.services import generation_batches_resend_stalled

    count = generation_batches_resend_stalled()
    if count:
        logger.warning("sent %d stalled generation batch(es) again", count)
    return count


def gpu_worker_on_filesystem_broker(sender: Any) -> bool:
    """Whether a starting worker (``worker_ready``'s sender) serves the ``gpu`` queue over the
    filesystem broker, where a message a dead worker took is gone for good (it has no unacked
    store), so the worker must enqueue unfinished work again. Redis and RabbitMQ redeliver."""
    if sender is None or not str(sender.app.conf.broker_url or "").startswith("filesystem"):
        return False
    queues = {q.name for q in getattr(sender.task_consumer, "queues", [])} if sender.task_consumer else set()
    return not queues or "gpu" in queues


@worker_ready.connect
def _resume_lost_batches(sender: Any = None, **kwargs: Any) -> None:
    """A starting ``gpu`` worker on the filesystem broker enqueues the unfinished jobs' missing
    batches again (see ``gpu_worker_on_filesystem_broker``)."""
    if not gpu_worker_on_filesystem_broker(sender):
        return
    from django.db import transaction

    from model_runner.services import generation_job_resume_all

    with transaction.atomic():
        count = generation_job_resume_all()
    if count:
        logger.info("re-enqueued %d unfinished generation batch(es) after a worker restart", count)
