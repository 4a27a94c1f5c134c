import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task
def assignments_expire_task() -> int:
    """Periodic (Celery beat): release leases whose time ran out."""
    from labeling.services import assignments_expire

    return assignments_expire()


@shared_task
def queues_reprioritize_task() -> int:
    """Periodic (Celery beat): refresh the uncertainty order of active adaptive queues.

    Submissions already reorder the pairs of the prompt they judged; this catches everything else
    (new items, expired leases, judgments deleted by an admin).
    """
    from labeling.models import Queue
    from labeling.services import queue_reprioritize

    changed = 0
    for queue in Queue.objects.filter(pairing=Queue.Pairing.ADAPTIVE, status=Queue.Status.ACTIVE):
        changed += queue_reprioritize(queue=queue)
    return changed


@shared_task
def queue_stats_refresh_task() -> int:
    """Periodic (Celery beat, on ``default``): compute the statistics of active queues whose cached
    answer is out of date, so their dashboards and ``stats/`` answer from the cache."""
    from labeling.selectors.queue_stats import queue_stats_refresh_active

    return queue_stats_refresh_active()


# Routed to the ``interactive`` queue (CELERY_TASK_ROUTES). acks_late: a killed worker's turn is
# redelivered, and taken again once stale (``turns_claim``); its candidates' unique key means a
# redelivered turn writes nothing twice.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def session_turn_generate_task(self: Any, turn_id: int) -> int:
    """Make a conversation turn's alternatives (with other turns waiting at the same time). Run
    eagerly, inside the request that asked, it does not wait for other trainers' turns."""
    from labeling.services.session_generation import turns_generate

    return turns_generate(turn_id=turn_id, gather=not self.request.is_eager)


@worker_ready.connect
def _resume_turns(sender: Any = None, **kwargs: Any) -> None:
    """A starting worker that serves the turns' queue (``interactive``, as routed) asks again for the
    turns left waiting (a filesystem broker forgets a message its dead worker took; any broker's
    worker may die mid-turn)."""
    if sender is None:
        return
    queues = {q.name for q in getattr(sender.task_consumer, "queues", [])} if sender.task_consumer else set()
    routed = sender.app.amqp.router.route({}, session_turn_generate_task.name)["queue"].name
    if queues and routed not in queues:
        return
    from django.db import transaction

    from labeling.services.session_generation import turns_resume_all

    with transaction.atomic():
        count = turns_resume_all()
    if count:
        logger.info("re-enqueued %d conversation turn(s) after a worker start", count)
