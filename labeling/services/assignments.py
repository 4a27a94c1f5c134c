"""Claiming work: leases, expiry, skips. See the package docstring for the lock order."""

from __future__ import annotations

import functools
import random
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from comparisons.models import Comparison, Prompt
from labeling import rows
from labeling.errors import ApplicationError, Conflict
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


# The one statement every claim runs, written once (see labeling.rows for why not the ORM).
_PICKED = (QueueItem, Comparison, Prompt)


@functools.cache
def _pick_sql(vendor: str, gold: bool) -> str:
    item, comparison, prompt, assignment = (rows.table(m) for m in (*_PICKED, Assignment))
    q = rows.quote
    sql = (
        f"SELECT {rows.select_list(*_PICKED)} FROM {item}"
        f" INNER JOIN {comparison} ON {comparison}.{q('id')} = {item}.{q('comparison_id')}"
        f" INNER JOIN {prompt} ON {prompt}.{q('id')} = {comparison}.{q('prompt_id')}"
        f" WHERE {item}.{q('queue_id')} = %s AND {item}.{q('is_gold')} = %s AND NOT {item}.{q('retired')}"
        # Gold items are answered by every rater; real items stop at the overlap.
        + ("" if gold else f" AND {item}.{q('claimed')} < %s")
        + f" AND NOT EXISTS (SELECT 1 FROM {assignment} WHERE {assignment}.{q('item_id')} = {item}.{q('id')}"
        f" AND {assignment}.{q('rater_id')} = %s)"
        f" ORDER BY {item}.{q('priority')} DESC, {item}.{q('id')} ASC LIMIT 1"
    )
    if vendor == "postgresql":
        sql += f" FOR UPDATE OF {item} SKIP LOCKED"
    return sql


def _pick_item(*, rater: User, queue: Queue, gold: bool) -> QueueItem | None:
    """The first item of the queue, by (priority desc, id), that this rater has not seen and that
    has room, locked (PostgreSQL: items other claimers hold are skipped, never waited on).

    NOT EXISTS probes the (item, rater) unique key for each item with room, walking the
    ``queueitem_pick_idx`` index in order, and stops at the first unseen one.
    """
    params: list[Any] = [queue.pk, gold] + ([] if gold else [queue.overlap]) + [rater.pk]
    found = rows.fetch_one(_pick_sql(connection.vendor, gold), params, _PICKED)
    if found is None:
        return None
    item, comparison, prompt = found
    comparison.prompt = prompt
    item.comparison = comparison
    return cast(QueueItem, item)


@functools.cache
def _member_sql(vendor: str) -> str:
    user, members, assignment, item = (
        rows.table(m) for m in (User, Queue.members.through, Assignment, QueueItem)
    )
    q = rows.quote
    held = (
        f"SELECT {assignment}.{q('id')} FROM {assignment}"
        f" INNER JOIN {item} ON {item}.{q('id')} = {assignment}.{q('item_id')}"
        f" WHERE {assignment}.{q('rater_id')} = {user}.{q('id')} AND {item}.{q('queue_id')} = %s"
        f" AND {assignment}.{q('status')} = %s AND {assignment}.{q('expires_at')} > %s"
        f" ORDER BY {assignment}.{q('id')} ASC LIMIT 1"
    )
    sql = (
        f"SELECT {user}.{q('id')}, ({held})"
        # A lease lost in a database crash is harmless (the rater asks again), so the claim's
        # commit does not wait for the disk (set for this transaction only); judgments still do.
        + (", set_config('synchronous_commit', 'off', true)" if vendor == "postgresql" else "")
        + f" FROM {user} INNER JOIN {members} ON {members}.{q('user_id')} = {user}.{q('id')}"
        f" WHERE {user}.{q('id')} = %s AND {members}.{q('queue_id')} = %s"
    )
    if vendor == "postgresql":
        sql += f" FOR UPDATE OF {user}"
    return sql


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
        # One statement locks the rater's row (serializes one rater's concurrent claims), checks
        # membership and finds the rater's oldest live lease in this queue, if any.
        with connection.cursor() as cursor:
            cursor.execute(
                _member_sql(connection.vendor),
                [
                    queue.pk,
                    Assignment.Status.LEASED,
                    connection.ops.adapt_datetimefield_value(now),
                    rater.pk,
                    queue.pk,
                ],
            )
            member = cursor.fetchone()
        if member is None:
            raise ApplicationError("You are not a member of this queue.", status_code=403)
        if not rater_is_qualified(rater=rater, queue=queue):
            raise ApplicationError(
                f"This queue needs a passed qualification in '{queue.qualification}' first.", status_code=403
            )
        held_id = member[1]
        if held_id is not None:
            if not fresh:
                refreshed = Assignment.objects.select_related("item__comparison__prompt").get(pk=held_id)
                return _attach(refreshed, queue)
            n_held = Assignment.objects.filter(
                rater=rater, item__queue=queue, status=Assignment.Status.LEASED, expires_at__gt=now
            ).count()
            if n_held >= queue.max_open_leases:
                raise Conflict(f"You already hold {n_held} open item(s) in this queue (the most allowed).")
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
        assignment = _lease(item=item, rater=rater, queue=queue, now=now)
    return _attach(assignment, queue)


@functools.cache
def _lease_sql(vendor: str) -> str:
    item, assignment = rows.table(QueueItem), rows.table(Assignment)
    q = rows.quote
    columns, placeholders = rows.insert_columns(Assignment)
    return (
        f"WITH bumped AS (UPDATE {item} SET {q('claimed')} = {q('claimed')} + 1 WHERE {q('id')} = %s)"
        f" INSERT INTO {assignment} ({', '.join(columns)}) VALUES ({', '.join(placeholders)}) RETURNING {q('id')}"
    )


def _lease(*, item: QueueItem, rater: User, queue: Queue, now: datetime) -> Assignment:
    """Take one of the item's slots and record the rater's lease (the pick locked the item row)."""
    assignment = Assignment(
        item=item,
        rater=rater,
        shown_order=_shown_order(item),
        expires_at=now + timedelta(seconds=queue.lease_seconds),
    )
    if connection.vendor != "postgresql":
        QueueItem.objects.filter(pk=item.pk).update(claimed=F("claimed") + 1)
        assignment.save(force_insert=True)
        return assignment
    # PostgreSQL: the slot and the lease in one statement, one round trip instead of two.
    with connection.cursor() as cursor:
        cursor.execute(_lease_sql(connection.vendor), [item.pk, *rows.insert_values(assignment)])
        rows.mark_saved(assignment, cursor.fetchone()[0])
    return assignment


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
