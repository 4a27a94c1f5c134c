"""Claiming work: the one door through which a rater gets the next item, from the API and the
judging page alike. Membership, qualification, lease caps, gold and content opt-outs are all
decided here, so a rule holds through both doors."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from labeling.errors import ApplicationError, Conflict, NotFound
from labeling.models import Assignment, ContentCategory, Queue, QueueItem, User
from labeling.selectors.content_warnings import content_warnings_for_assignment, queue_opted_out_category
from labeling.selectors.pauses import pause_refusal_message, rater_open_pause
from labeling.selectors.quality import rater_gold_accuracy
from labeling.selectors.queues import current_overlap
from labeling.selectors.tag_policies import ItemOverlap, overlap_tags, queue_most_overlap, rater_tags_at_cap
from labeling.services.assignments import (
    assignment_lease,
    assignment_lease_again,
    assignment_pass_on,
    assignments_expire,
)
from labeling.services.wellbeing import wellbeing_daily_cap_check, wellbeing_disturbing_check
from labeling.sql import statements

#: How many opted-out items one claim passes over before giving up (and showing "nothing left").
MAX_OPT_OUT_PASSES = 50

_LAST_SCAN: dict[int, datetime] = {}


def rater_is_qualified(*, rater: User, queue: Queue) -> bool:
    """Has the rater passed the queue's qualification (gold) queue, if it has one?"""
    if queue.qualification_id is None:
        return True
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

    Refused with a clear message: a queue marked disturbing for a rater who has not opted in
    (403), a rater at the queue's daily cap of items per UTC day (429, ``DailyCapReached``: see
    ``labeling.services.wellbeing``), a queue whose content warning the rater opted out of (403), an
    unpassed qualification (403), a rater paused from the queue for their gold accuracy (403,
    with the evidence; see ``labeling.services.pauses``), a rater who is not a member (404, as
    for a queue that does not exist), a fresh lease past ``max_open_leases`` (409).

    Guarantees, also with many raters claiming at once:
    - a rater who holds an unexpired lease in this queue gets it back (a refresh never burns an
      item) unless ``fresh`` asks for another one, up to the queue's ``max_open_leases``; two
      concurrent claims by one rater are serialized by locking the rater's row;
    - a rater never gets an item they already judged, skipped or held (unique item/rater), except
      an item they skipped "for later", which comes back after everything else;
    - no item is leased or judged more than its overlap (the queue's, or with per-tag policies its
      prompt's tags' when higher: ``labeling.selectors.tag_policies``): candidate items are locked
      with ``SELECT ... FOR UPDATE SKIP LOCKED`` in a fixed order (priority, id), so two raters never
      wait on or take the same slot, and ``claimed`` only grows under that lock;
    - a rater's leases and judgments on a tag with a ``max_rater_share`` never pass its share cap:
      their work on each capped tag is counted under their row lock, and items carrying a tag they
      are at the cap of are passed over (they get other items);
    - gold items are mixed in at the queue's gold rate (any number of raters answer each one);
      a rater gets no gold once the real items are gone;
    - an item carrying a content warning the rater opted out of is passed on to others unseen
      (``assignment_pass_on``) and the next one is claimed.
    """
    if queue.kind == Queue.Kind.CONVERSATION:
        # Its items are the turns of sessions, each ranked by the trainer who made it.
        raise Conflict(
            "This queue holds conversations: start a session at /chat/ (or POST /api/v1/sessions/)."
        )
    # Wellbeing: a queue marked disturbing serves only raters who opted in (403, naming the profile).
    wellbeing_disturbing_check(opted_in=rater.disturbing_opt_in, queue=queue)
    opted_out = queue_opted_out_category(rater=rater, queue=queue)
    if opted_out:
        label = dict(ContentCategory.choices)[opted_out]
        raise ApplicationError(
            f"This queue carries a content warning ({label}) you opted out of (see your profile).",
            status_code=403,
        )
    opt_outs = set(rater.content_opt_outs or [])
    for _ in range(MAX_OPT_OUT_PASSES):
        assignment = _claim(rater=rater, queue=queue, now=now, fresh=fresh, rng=rng)
        if assignment is None or not opt_outs:
            return assignment
        warnings = content_warnings_for_assignment(assignment=assignment)
        hit = sorted(w["category"] for w in warnings if w["category"] in opt_outs)
        if not hit:
            return assignment
        assignment_pass_on(assignment=assignment, categories=hit)
    return None


def _claim(
    *, rater: User, queue: Queue, now: datetime | None, fresh: bool, rng: random.Random | None
) -> Assignment | None:
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
        member = statements.claim_lock_rater.row(
            queue_id=queue.pk,
            leased=Assignment.Status.LEASED,
            now=connection.ops.adapt_datetimefield_value(now),
            rater_id=rater.pk,
        )
        if member is None:
            raise NotFound("No such queue.")
        if member[2]:
            pause = rater_open_pause(rater=rater, queue=queue)
            if pause is not None:
                raise ApplicationError(pause_refusal_message(pause), status_code=403)
        if not rater_is_qualified(rater=rater, queue=queue):
            raise ApplicationError(
                f"This queue needs a passed qualification in '{queue.qualification}' first.", status_code=403
            )
        held_id = member[1]
        if held_id is not None:
            if not fresh:
                held = Assignment.objects.select_related("item__comparison__prompt").get(pk=held_id)
                return _attach(held, queue)
            n_held = Assignment.objects.filter(
                rater=rater, item__queue=queue, status=Assignment.Status.LEASED, expires_at__gt=now
            ).count()
            if n_held >= queue.max_open_leases:
                raise Conflict(f"You already hold {n_held} open item(s) in this queue (the most allowed).")
        # Wellbeing: the queue's daily cap, counted under the rater's row lock (so it holds when
        # one rater claims twice at once); a held lease above was counted when it was made.
        wellbeing_daily_cap_check(rater_id=rater.pk, queue=queue, now=now)
        # Sensitive topics: the tags this rater is at the share cap of (their work on them cannot
        # grow while their row is locked); their items are passed over.
        at_cap = rater_tags_at_cap(rater=rater, queue=queue) if queue.tag_policies else []
        item = _pick_item(rater=rater, queue=queue, gold=want_gold, at_cap=at_cap)
        if want_gold and item is None:
            item = _pick_item(rater=rater, queue=queue, gold=False, at_cap=at_cap)
        if item is not None:
            return _attach(assignment_lease(item=item, rater=rater, queue=queue, now=now), queue)
        requeued = _pick_requeued(rater=rater, queue=queue, at_cap=at_cap)
        if requeued is None:
            return None
        return _attach(assignment_lease_again(assignment=requeued, queue=queue, now=now), queue)


def _pick_item(*, rater: User, queue: Queue, gold: bool, at_cap: list[str]) -> QueueItem | None:
    """The next unseen item with room, locked (see ``statements.claim_pick_item``; in a queue with
    per-tag policies ``claim_pick_item_by_tag``, passing over items tagged with ``at_cap``)."""
    if gold:
        found = statements.claim_pick_gold_item.instances(queue_id=queue.pk, rater_id=rater.pk, is_gold=True)
    elif queue.tag_policies:
        found = statements.claim_pick_item_by_tag.instances(
            queue_id=queue.pk,
            rater_id=rater.pk,
            is_gold=False,
            most_overlap=queue_most_overlap(queue=queue),
            policy_tags=json.dumps(overlap_tags(queue.tag_policies)),
            capped_tags=json.dumps(at_cap),
        )
    else:
        found = statements.claim_pick_item.instances(queue_id=queue.pk, rater_id=rater.pk, is_gold=False)
    if found is None:
        return None
    item, comparison, prompt = found
    comparison.prompt = prompt
    item.comparison = comparison
    return cast(QueueItem, item)


def _pick_requeued(*, rater: User, queue: Queue, at_cap: list[str]) -> Assignment | None:
    """A skipped-for-later item of this rater that still has room (skip policy ``later``) and no
    tag of ``at_cap``, locked."""
    skipped = list(
        Assignment.objects.filter(
            rater=rater, item__queue=queue, status=Assignment.Status.SKIPPED, requeue=True
        ).values_list("pk", "item_id")
    )
    if not skipped:
        return None
    ids = [i for _, i in skipped]
    if at_cap:  # a rater's own few skipped items: their tags are read here (JSON lookups differ by database)
        capped = set(at_cap)
        tagged = QueueItem.objects.filter(pk__in=ids).values_list("pk", "comparison__prompt__tags")
        ids = [pk for pk, tags in tagged if not capped.intersection(tags or [])]
    room = ItemOverlap.for_queue(queue) if queue.tag_policies else current_overlap(queue_id=queue.pk)
    items = QueueItem.objects.filter(pk__in=ids, retired=False, claimed__lt=room)
    if connection.features.has_select_for_update_skip_locked:
        items = items.select_for_update(skip_locked=True, of=("self",))
    item = items.order_by("-priority", "id").select_related("comparison__prompt").first()
    if item is None:
        return None
    assignment = Assignment.objects.get(pk=next(pk for pk, i in skipped if i == item.pk))
    assignment.item = item
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
            continue  # not qualified, or opted out: try the next queue
        if assignment is not None:
            return assignment
    return None
