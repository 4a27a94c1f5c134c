"""Claiming work: leases, expiry, skips. See the package docstring for the lock order."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from labeling.apis_common import ApplicationError, Conflict
from labeling.models import Assignment, Queue, QueueItem, User

# ------------------------------------------------------------------------- claiming work


def _shown_order(item: QueueItem) -> list[int]:
    """The comparison's candidates in a fresh random order (index 0 is label A)."""
    # candidate_key holds the comparison's candidate ids, so no query is needed.
    ids = [int(x) for x in item.comparison.candidate_key.split(",")]
    random.SystemRandom().shuffle(ids)
    return ids


_LAST_SCAN: dict[int, datetime] = {}


def assignments_expire(*, queue: Queue | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """Release leases whose time ran out, so their items can go to other raters.

    Each lease is released in its own short transaction (assignment row, then item row), and only
    if it is still leased: two processes expiring the same lease release its slot once.
    """
    now = now or timezone.now()
    qs = Assignment.objects.filter(status=Assignment.Status.LEASED, expires_at__lte=now)
    if queue is not None:
        qs = qs.filter(item__queue=queue)
    released = 0
    for assignment_id, item_id in qs.order_by("id").values_list("id", "item_id")[:limit]:
        with transaction.atomic():
            n = Assignment.objects.filter(pk=assignment_id, status=Assignment.Status.LEASED).update(
                status=Assignment.Status.EXPIRED, updated_at=now
            )
            if n:
                QueueItem.objects.filter(pk=item_id).update(claimed=F("claimed") - 1)
                released += 1
    return released


def _lockable(qs: QuerySet[QueueItem]) -> QuerySet[QueueItem]:
    """Lock the rows we pick and skip rows another claimer holds (PostgreSQL).

    SQLite has no row locks; there every transaction begins IMMEDIATE, so claims run one at a time.
    """
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, of=("self",))
    return qs


def _pick_item(*, rater: User, queue: Queue, gold: bool) -> QueueItem | None:
    seen = Assignment.objects.filter(rater=rater, item__queue=queue).values("item_id")
    qs = QueueItem.objects.filter(queue=queue, is_gold=gold, retired=False).exclude(pk__in=seen)
    if not gold:
        # Gold items are answered by every rater; real items stop at the overlap.
        qs = qs.filter(claimed__lt=queue.overlap)
    return _lockable(qs.order_by("-priority", "id")).select_related("comparison__prompt").first()


def _pick_requeued(*, rater: User, queue: Queue) -> Assignment | None:
    """A skipped-for-later item of this rater that still has room (skip policy ``later``)."""
    skipped = list(
        Assignment.objects.filter(
            rater=rater, item__queue=queue, status=Assignment.Status.SKIPPED, requeue=True
        ).values_list("pk", "item_id")
    )
    if not skipped:
        return None
    items = _lockable(
        QueueItem.objects.filter(pk__in=[i for _, i in skipped], retired=False, claimed__lt=queue.overlap)
    ).order_by("-priority", "id")
    item = items.select_related("comparison__prompt").first()
    if item is None:
        return None
    assignment = Assignment.objects.get(pk=next(pk for pk, i in skipped if i == item.pk))
    assignment.item = item
    return assignment


def rater_is_qualified(*, rater: User, queue: Queue) -> bool:
    """Has the rater passed the queue's qualification (gold) queue, if it has one?"""
    if queue.qualification_id is None:
        return True
    from labeling.selectors import rater_gold_accuracy

    answered, accuracy = rater_gold_accuracy(rater=rater, queue_id=queue.qualification_id)
    return answered >= queue.qualification_min_items and accuracy >= queue.qualification_min_accuracy


def assignment_claim_next(
    *,
    rater: User,
    queue: Queue,
    now: datetime | None = None,
    fresh: bool = False,
    rng: random.Random | None = None,
) -> Assignment | None:
    """Lease the next item of ``queue`` to ``rater``, or return None when nothing is left for them.

    Guarantees, also with many raters claiming at once:
    - a rater who holds an unexpired lease in this queue gets it back (a refresh never burns an
      item) unless ``fresh`` asks for another one, up to the queue's ``max_open_leases``; two
      concurrent claims by one rater are serialized by locking the rater's row;
    - a rater never gets an item they already judged, skipped or held (unique item/rater), except
      an item they skipped "for later", which comes back after everything else;
    - no item is leased or judged more than the queue's overlap: candidate items are locked with
      ``SELECT ... FOR UPDATE SKIP LOCKED`` in a fixed order (priority, id), so two raters never
      wait on or take the same slot, and ``claimed`` only grows under that lock;
    - gold items are mixed in at the queue's gold rate (any number of raters answer each one);
      a rater gets no gold once the real items are gone.
    """
    now = now or timezone.now()
    if queue.status != Queue.Status.ACTIVE:
        return None
    # Reclaim expired leases at claim time, at most once per PREFLAB_LEASE_SCAN_SECONDS per queue
    # and process (the beat task does it too): a slot freed by an expiry is seen within that time.
    last = _LAST_SCAN.get(queue.pk)
    every = timedelta(seconds=settings.PREFLAB_LEASE_SCAN_SECONDS)
    if last is None or not (last <= now < last + every):
        _LAST_SCAN[queue.pk] = now
        assignments_expire(queue=queue, now=now)
    want_gold = queue.gold_rate > 0 and (rng or random).random() < queue.gold_rate
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A lease lost in a database crash is harmless (the rater asks again), so the claim
            # does not wait for its commit to reach the disk; judgments still do.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        # Lock the rater's row (serializes one rater's concurrent claims) and check membership
        # in the same query.
        member = (
            User.objects.select_for_update(of=("self",))
            .filter(pk=rater.pk, queues=queue)
            .values_list("pk", flat=True)
            .first()
        )
        if member is None:
            raise ApplicationError("You are not a member of this queue.", status_code=403)
        if not rater_is_qualified(rater=rater, queue=queue):
            raise ApplicationError(
                f"This queue needs a passed qualification in '{queue.qualification}' first.", status_code=403
            )
        # Ids first: most claims hold nothing, and the joined row is only needed for a refresh.
        held = list(
            Assignment.objects.filter(
                rater=rater, item__queue=queue, status=Assignment.Status.LEASED, expires_at__gt=now
            )
            .order_by("id")
            .values_list("id", flat=True)
        )
        if held and not fresh:
            refreshed = Assignment.objects.select_related("item__comparison__prompt").get(pk=held[0])
            return _attach(refreshed, queue)
        if len(held) >= queue.max_open_leases:
            raise Conflict(f"You already hold {len(held)} open item(s) in this queue (the most allowed).")
        item = _pick_item(rater=rater, queue=queue, gold=want_gold)
        if want_gold and item is None:
            item = _pick_item(rater=rater, queue=queue, gold=False)
        if item is None:
            requeued = _pick_requeued(rater=rater, queue=queue)
            if requeued is None:
                return None
            QueueItem.objects.filter(pk=requeued.item.pk).update(claimed=F("claimed") + 1)
            requeued.status = Assignment.Status.LEASED
            requeued.requeue = False
            requeued.shown_order = _shown_order(requeued.item)
            requeued.expires_at = now + timedelta(seconds=queue.lease_seconds)
            requeued.save(update_fields=["status", "requeue", "shown_order", "expires_at", "updated_at"])
            return _attach(requeued, queue)
        QueueItem.objects.filter(pk=item.pk).update(claimed=F("claimed") + 1)
        assignment = Assignment.objects.create(
            item=item,
            rater=rater,
            shown_order=_shown_order(item),
            expires_at=now + timedelta(seconds=queue.lease_seconds),
        )
    return _attach(assignment, queue)


def _attach(assignment: Assignment, queue: Queue) -> Assignment:
    # The caller's queue row (with its rubric) saves a query when the payload is built.
    assignment.item.queue = queue
    return assignment


def assignment_claim_next_any(*, rater: User, now: datetime | None = None) -> Assignment | None:
    """The next item from the rater's queues, highest queue priority first."""
    for queue in Queue.objects.filter(members=rater, status=Queue.Status.ACTIVE).select_related("rubric"):
        try:
            assignment = assignment_claim_next(rater=rater, queue=queue, now=now)
        except ApplicationError:
            continue  # not qualified yet: try the next queue
        if assignment is not None:
            return assignment
    return None


def assignment_skip(*, assignment: Assignment, reason: str = "") -> Assignment:
    """Give the item back, as the queue's skip policy says. Idempotent; a judged item cannot be skipped.

    ``others``: the slot goes to other raters, never back to this one. ``later``: also back to this
    rater once everything else is done. ``retire``: the item is withdrawn for everyone.
    """
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().select_related("item__queue").get(pk=assignment.pk)
        if locked.status == Assignment.Status.SUBMITTED:
            raise Conflict("This item is already judged; it cannot be skipped.")
        if locked.status == Assignment.Status.SKIPPED:
            return locked
        policy = locked.item.queue.skip_policy
        if locked.status == Assignment.Status.LEASED:
            QueueItem.objects.filter(pk=locked.item_id).update(claimed=F("claimed") - 1)
        if policy == Queue.SkipPolicy.RETIRE:
            QueueItem.objects.filter(pk=locked.item_id).update(retired=True)
        locked.status = Assignment.Status.SKIPPED
        locked.requeue = policy == Queue.SkipPolicy.LATER
        locked.skip_reason = reason[:500]
        locked.save(update_fields=["status", "requeue", "skip_reason", "updated_at"])
    return locked
