"""Pausing a rater from a queue on their gold accuracy, and lifting the pause.

The evidence is evaluated only when it changes: after the rater's gold judgment in the queue is
recorded (``judgment_submit`` calls ``rater_queue_pause_check`` in the same transaction, so the
judgment and the pause commit together). The claim then only probes for an open pause, inside the
statement that already locks the rater's row (``statements.claim_lock_rater``): no extra query on
the hot path. A pause is lifted by an admin; gold answers given before the lift are spent, so a
lifted rater is paused again only on gold answers given after the lift.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.audit import audit_record
from labeling.errors import Conflict, column_check
from labeling.models import Queue, RaterQueuePause, User
from labeling.selectors.pauses import rater_last_lift
from labeling.selectors.quality import rater_gold_accuracy


def rater_queue_pause_check(
    *, queue: Queue, rater_id: int, now: datetime | None = None
) -> RaterQueuePause | None:
    """Pause the rater from ``queue`` if their gold accuracy there, over the gold answers since
    their last lift, is under ``queue.gold_min_accuracy`` after at least ``queue.gold_min_items``
    of them. Returns the new pause, or None (threshold off, too few answers, accurate enough, or
    already paused). Call inside the transaction that recorded the gold judgment."""
    if queue.gold_min_accuracy is None:
        return None
    since = rater_last_lift(rater_id=rater_id, queue_id=queue.pk)
    answered, accuracy = rater_gold_accuracy(rater=rater_id, queue_id=queue.pk, since=since)
    if answered < max(queue.gold_min_items, 1) or accuracy >= queue.gold_min_accuracy:
        return None
    if RaterQueuePause.objects.filter(queue=queue, rater_id=rater_id, lifted_at__isnull=True).exists():
        return None
    correct = round(accuracy * answered)
    reason = (
        f"gold accuracy {accuracy:.0%} ({correct} of {answered} gold items right"
        f"{' since the last lift' if since else ''}) is under the queue's minimum of "
        f"{queue.gold_min_accuracy:.0%} (checked after {queue.gold_min_items} gold items)."
    )
    pause = RaterQueuePause(
        queue=queue,
        rater_id=rater_id,
        reason=reason[:1].upper() + reason[1:],
        gold_answered=answered,
        gold_correct=correct,
        accuracy=accuracy,
        min_accuracy=queue.gold_min_accuracy,
        created_at=now or timezone.now(),
    )
    try:
        with transaction.atomic():  # a savepoint: a concurrent pause of the same rater wins
            pause.save()
    except IntegrityError:
        return None
    audit_record(
        "rater.pause",
        target=pause,
        changes={"rater": rater_id, "queue": queue.pk, "reason": pause.reason, "automatic": True},
    )
    return pause


def rater_queue_pause_lift(*, pause: RaterQueuePause, by: User, note: str = "") -> RaterQueuePause:
    """Lift an open pause (the rater may claim from the queue again), recording who, when and
    why. Lifting a lifted pause is a Conflict; nothing changes then."""
    note = column_check(RaterQueuePause._meta.get_field("lift_note"), (note or "").strip(), name="note")
    with transaction.atomic():
        locked = RaterQueuePause.objects.select_for_update().get(pk=pause.pk)
        if locked.lifted_at is not None:
            raise Conflict(f"This pause was already lifted at {locked.lifted_at:%Y-%m-%d %H:%M} UTC.")
        locked.lifted_at = timezone.now()
        locked.lifted_by = by
        locked.lift_note = note
        locked.save(update_fields=["lifted_at", "lifted_by", "lift_note"])
        audit_record(
            "rater.pause_lift",
            target=locked,
            actor=by,
            changes={
                "rater": locked.rater_id,
                "queue": locked.queue_id,
                "lifted": [False, True],
                "note": note,
            },
        )
    return locked
