"""Raters paused from a queue for their gold accuracy: the open pause, a queue's list, and the
words a refused claim shows (``labeling.services.pauses`` writes them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef

from labeling.errors import NotFound, id_or_none
from labeling.models import Queue, RaterQueuePause, User


def rater_open_pause(*, rater: User, queue: Queue) -> RaterQueuePause | None:
    """The rater's open pause in this queue, if any."""
    return RaterQueuePause.objects.filter(queue=queue, rater=rater, lifted_at__isnull=True).first()


def paused_rater_exists(
    *, queue_ref: str = "assignment__item__queue_id", rater_ref: str = "assignment__rater_id"
) -> Exists:
    """An expression that is true for a row whose rater has an open pause in the row's queue; the
    default references fit a ``Judgment`` queryset: ``judgments.exclude(paused_rater_exists())``
    leaves out the judgments of raters paused from their queue (one indexed probe per row)."""
    return Exists(
        RaterQueuePause.objects.filter(
            queue_id=OuterRef(queue_ref), rater_id=OuterRef(rater_ref), lifted_at__isnull=True
        )
    )


def rater_last_lift(*, rater_id: int, queue_id: int) -> datetime | None:
    """When the rater's last pause in this queue was lifted: gold answers before it are spent."""
    return (
        RaterQueuePause.objects.filter(queue_id=queue_id, rater_id=rater_id, lifted_at__isnull=False)
        .order_by("-lifted_at")
        .values_list("lifted_at", flat=True)
        .first()
    )


def queue_pauses(*, queue: Queue) -> list[RaterQueuePause]:
    """The queue's pauses, open ones first, then the newest."""
    pauses = RaterQueuePause.objects.filter(queue=queue).select_related("rater", "lifted_by")
    return sorted(pauses, key=lambda p: (p.lifted_at is not None, -p.created_at.timestamp(), -p.pk))


def queue_pause_get(*, queue: Queue, pause_id: Any) -> RaterQueuePause:
    """One pause of this queue, or 404."""
    pk = id_or_none(pause_id, RaterQueuePause._meta.pk)
    pause = RaterQueuePause.objects.filter(queue=queue, pk=pk).first() if pk is not None else None
    if pause is None:
        raise NotFound("No such pause in this queue.")
    return pause


def pause_refusal_message(pause: RaterQueuePause) -> str:
    """What a paused rater is told when they ask this queue for work."""
    return f"You are paused from this queue: {pause.reason} An admin can lift the pause."


def pause_payload(pause: RaterQueuePause) -> dict[str, Any]:
    return {
        "id": pause.pk,
        "queue": pause.queue_id,
        "rater": pause.rater_id,
        "rater_username": pause.rater.username,
        "reason": pause.reason,
        "gold_answered": pause.gold_answered,
        "gold_correct": pause.gold_correct,
        "accuracy": pause.accuracy,
        "min_accuracy": pause.min_accuracy,
        "created_at": pause.created_at,
        "open": pause.lifted_at is None,
        "lifted_at": pause.lifted_at,
        "lifted_by": pause.lifted_by.username if pause.lifted_by is not None else None,
        "lift_note": pause.lift_note,
    }
