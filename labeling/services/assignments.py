"""The assignment lifecycle: the one module that changes ``Assignment.status`` and the queue
item counters ``QueueItem.claimed`` and ``QueueItem.judged``.

States (see ``Assignment.Status``) and the only moves between them::

    (new) --lease--> LEASED --submit--> SUBMITTED --reopen (undo)--> LEASED
                     LEASED --skip / pass on--> SKIPPED --lease again (skip policy "later")--> LEASED
                     LEASED --expire--> EXPIRED --submit (a slot is still free)--> SUBMITTED

``claimed`` counts an item's live leases plus its submitted judgments, ``judged`` its
judgments; each move below changes them in the same transaction as the status, so they never
drift from the rows (``manage.py check_integrity`` recomputes both and reports any drift).
Lock order, as everywhere in labeling: rater row -> assignment row -> queue item row.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from comparisons.models import Candidate, ComparisonCandidate
from labeling.errors import Conflict
from labeling.models import Assignment, Judgment, Queue, QueueItem, User
from labeling.selectors.queues import current_overlap
from labeling.selectors.tag_policies import ItemOverlap, queue_item_overlap, rater_tags_at_cap
from labeling.sql import statements
from labeling.sql.hydrate import insert_values, mark_saved

#: The generator that human-written responses ("write a better response") are stored under.
HUMAN_GENERATOR_NAME = "human-rewrite"


def _shown_order(item: QueueItem) -> list[int]:
    """The comparison's candidates in a fresh random order (index 0 is label A)."""
    # candidate_key holds the comparison's candidate ids, so no query is needed.
    ids = [int(x) for x in item.comparison.candidate_key.split(",")]
    random.SystemRandom().shuffle(ids)
    return ids


# ------------------------------------------------------------------------------- lease


def assignment_lease(*, item: QueueItem, rater: User, queue: Queue, now: datetime) -> Assignment:
    """(new) -> LEASED: take one of the item's slots and record the rater's lease.

    The caller (the claim) holds the item's row lock and has checked that a slot is free.
    """
    assignment = Assignment(
        item=item,
        rater=rater,
        status=Assignment.Status.LEASED,
        shown_order=_shown_order(item),
        expires_at=now + timedelta(seconds=queue.lease_seconds),
    )
    if connection.vendor != "postgresql":
        QueueItem.objects.filter(pk=item.pk).update(claimed=F("claimed") + 1)
        assignment.save(force_insert=True)
        return assignment
    # PostgreSQL: the slot and the lease in one statement, one round trip instead of two.
    row = statements.pg_lease_insert.row(**insert_values(assignment))
    assert row is not None
    mark_saved(assignment, row[0])
    return assignment


def assignment_lease_again(*, assignment: Assignment, queue: Queue, now: datetime) -> Assignment:
    """SKIPPED -> LEASED: an item the rater skipped "for later" comes back to them, shown in a
    fresh order. The caller (the claim) holds the item's row lock and has checked for a free slot."""
    QueueItem.objects.filter(pk=assignment.item.pk).update(claimed=F("claimed") + 1)
    assignment.status = Assignment.Status.LEASED
    assignment.requeue = False
    assignment.shown_order = _shown_order(assignment.item)
    assignment.expires_at = now + timedelta(seconds=queue.lease_seconds)
    assignment.save(update_fields=["status", "requeue", "shown_order", "expires_at", "updated_at"])
    return assignment


# ------------------------------------------------------------------------------ submit


def assignment_submit(*, judgment: Judgment, queue: Queue, now: datetime) -> Judgment:
    """LEASED or EXPIRED -> SUBMITTED: store ``judgment`` and count it on its item.

    Call inside a transaction. Returns the stored judgment, or the one stored before when the
    assignment is already SUBMITTED (a concurrent double click got there first). A live lease
    keeps its slot; an EXPIRED one takes a slot again if one is free, else Conflict. A SKIPPED
    one is refused (Conflict). Nothing is written when it refuses.
    """
    assignment = judgment.assignment
    if connection.vendor == "postgresql":
        # The usual case, a live lease, in one statement (see statements.pg_judgment_record).
        params = insert_values(judgment)
        del params["row_assignment_id"]  # comes from the moved assignment row
        row = statements.pg_judgment_record.row(
            submitted=Assignment.Status.SUBMITTED,
            now=now,
            assignment_id=assignment.pk,
            leased=Assignment.Status.LEASED,
            **params,
        )
        if row is not None:
            mark_saved(judgment, row[0])
            assignment.status = Assignment.Status.SUBMITTED
            return judgment
    elif Assignment.objects.filter(pk=assignment.pk, status=Assignment.Status.LEASED).update(
        status=Assignment.Status.SUBMITTED, updated_at=now
    ):
        _judgment_insert(judgment)
        assignment.status = Assignment.Status.SUBMITTED
        return judgment
    locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if locked.status == Assignment.Status.SUBMITTED:
        return Judgment.objects.get(assignment=locked)
    if locked.status == Assignment.Status.SKIPPED:
        raise Conflict("You skipped this item; it can no longer be judged.")
    # EXPIRED: the lease was released; take a slot again if one is free (and, on a sensitive
    # topic, if the rater's share of it leaves room: labeling.selectors.tag_policies).
    if queue.tag_policies:
        at_cap = set(rater_tags_at_cap(rater=locked.rater, queue=queue))
        tags = QueueItem.objects.filter(pk=locked.item_id).values_list("comparison__prompt__tags", flat=True)
        if at_cap.intersection(tags.first() or []):
            raise Conflict(
                "Your lease on this item expired, and you have since judged your share of its topic."
            )
    room = ItemOverlap.for_queue(queue) if queue.tag_policies else current_overlap(queue_id=queue.pk)
    if not QueueItem.objects.filter(pk=locked.item_id, claimed__lt=room).update(claimed=F("claimed") + 1):
        raise Conflict("Your lease on this item expired and it has since been judged by enough raters.")
    Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SUBMITTED, updated_at=now)
    _judgment_insert(judgment)
    assignment.status = Assignment.Status.SUBMITTED
    return judgment


def _judgment_insert(judgment: Judgment) -> None:
    judgment.save(force_insert=True)
    QueueItem.objects.filter(pk=judgment.assignment.item_id).update(judged=F("judged") + 1)


# ------------------------------------------------------------------ skip and pass on


def assignment_skip(*, assignment: Assignment, reason: str = "") -> Assignment:
    """LEASED or EXPIRED -> SKIPPED, as the queue's skip policy says. Idempotent; a judged item
    cannot be skipped (Conflict).

    ``others``: the slot goes to other raters, never back to this one. ``later``: also back to
    this rater once everything else is done. ``retire``: the item is withdrawn for everyone.
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


def assignment_pass_on(*, assignment: Assignment, categories: list[str]) -> Assignment:
    """LEASED -> SKIPPED: give back an item carrying content the rater opted out of, unseen.

    Like a skip with policy ``others`` whatever the queue's policy (an opt-out never retires an
    item for everyone, nor brings it back to this rater): the slot goes to other raters.
    """
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.status != Assignment.Status.LEASED:
            return locked
        QueueItem.objects.filter(pk=locked.item_id).update(claimed=F("claimed") - 1)
        locked.status = Assignment.Status.SKIPPED
        locked.requeue = False
        locked.skip_reason = ("content opt-out: " + ", ".join(categories))[:500]
        locked.save(update_fields=["status", "requeue", "skip_reason", "updated_at"])
    return locked


# ------------------------------------------------------------------------------ expire


def assignments_expire(*, queue: Queue | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """LEASED -> EXPIRED for leases whose time ran out, so their items can go to other raters.

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


# ------------------------------------------------------------------------ reopen (undo)


def assignment_reopen_last(
    *, rater: User, queue: Queue, now: datetime | None = None
) -> tuple[Assignment, dict[str, Any]]:
    """SUBMITTED -> LEASED: reopen the rater's latest judgment in ``queue`` (undo).

    Allowed while the original lease would still be valid (``expires_at`` in the future) and the
    item is still open (not retired, within the overlap): the slot the judgment held becomes the
    lease's slot again, so ``claimed`` is unchanged and ``judged`` drops by one. The judgment is
    deleted, and a human rewrite stored from it too unless a comparison already uses it.

    Locks the rater row, then the assignment row, then the item row: an undo racing a claim or a
    double-clicked undo by the same rater runs one after the other; the second finds nothing
    newer to undo or reopens the previous one only if it too qualifies.
    Returns (the reopened assignment, the removed answers to prefill the form with).
    """
    now = now or timezone.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=rater.pk).values_list("pk", flat=True).first()
        last_id = (
            Assignment.objects.filter(rater=rater, item__queue=queue, status=Assignment.Status.SUBMITTED)
            .order_by("-updated_at", "-id")
            .values_list("pk", flat=True)
            .first()
        )
        if queue.kind == Queue.Kind.CONVERSATION:
            # The conversation went on from the ranked reply: go back to that turn instead.
            raise Conflict(
                "A conversation's rankings are not undone: go back to the turn in the conversation."
            )
        if last_id is None:
            raise Conflict("There is no judgment of yours in this queue to undo.")
        locked = Assignment.objects.select_for_update().get(pk=last_id)
        item = QueueItem.objects.select_for_update().get(pk=locked.item_id)
        if locked.status != Assignment.Status.SUBMITTED:
            raise Conflict("That judgment was already reopened.")
        if locked.expires_at <= now:
            raise Conflict("Too late to undo: the lease on your last item has run out.")
        if item.retired or item.claimed > queue_item_overlap(queue=queue, item=item):
            raise Conflict("Too late to undo: your last item is closed.")
        judgment = Judgment.objects.get(assignment=locked)
        previous = {
            key: getattr(judgment, key)
            for key in (
                "preference",
                "ranking",
                "criteria",
                "flags",
                "rationale",
                "rewrite",
                "active_seconds",
            )
        }
        rewrite = Candidate.objects.filter(
            generator__name=HUMAN_GENERATOR_NAME, sample_index=judgment.pk, author_id=rater.pk
        ).first()
        if rewrite is not None and not ComparisonCandidate.objects.filter(candidate=rewrite).exists():
            rewrite.delete()
        judgment.delete()
        QueueItem.objects.filter(pk=item.pk).update(judged=F("judged") - 1)
        locked.status = Assignment.Status.LEASED
        locked.save(update_fields=["status", "updated_at"])
    locked.item = item
    item.queue = queue
    return locked, previous


# ------------------------------------------------------------------------------ repair


def queue_items_recount(*, item_ids: list[int]) -> int:
    """Set ``claimed`` and ``judged`` of these items to what their rows say (``check_integrity
    --fix``). Each item is locked while it is recounted, so a concurrent claim or submit waits.
    Returns how many items changed."""
    changed = 0
    for item_id in sorted(item_ids):
        with transaction.atomic():
            item = QueueItem.objects.select_for_update().filter(pk=item_id).first()
            if item is None:
                continue
            counts = Assignment.objects.filter(item_id=item_id).aggregate(
                claimed=Count(
                    "id", filter=Q(status__in=[Assignment.Status.LEASED, Assignment.Status.SUBMITTED])
                ),
                judged=Count("judgment"),
            )
            if (item.claimed, item.judged) != (counts["claimed"], counts["judged"]):
                QueueItem.objects.filter(pk=item_id).update(
                    claimed=counts["claimed"], judged=counts["judged"]
                )
                changed += 1
    return changed
