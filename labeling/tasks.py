from celery import shared_task


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
