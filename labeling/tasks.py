from celery import shared_task


@shared_task
def assignments_expire_task() -> int:
    """Periodic (Celery beat): release leases whose time ran out."""
    from labeling.services import assignments_expire

    return assignments_expire()
