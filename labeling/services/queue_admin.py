"""Running a queue once it exists: pause, resume, close or reopen it, change the settings that are
safe to change while raters work, and say who works on it. Admins do this on ``/manage/queues/``
and the queue's dashboard, or with ``PATCH /api/v1/queues/{id}/``: both doors call these.

``Queue.status`` changes only in this module. States (see ``Queue.Status``) and the moves::

    ACTIVE --pause--> PAUSED --resume--> ACTIVE
    ACTIVE, PAUSED --close--> CLOSED --reopen--> ACTIVE

A paused or closed queue hands out nothing new. Leases already held stay the raters' until they
expire, and judgments on them are accepted: nobody loses work they are in the middle of.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from labeling.audit import audit_changes, audit_record
from labeling.errors import ApplicationError, Conflict, column_check
from labeling.models import ContentCategory, Queue, QueueItem, User
from labeling.selectors.queue_admin import queue_overlap_floor
from labeling.services.tag_policies import queue_tag_policies_check_change, queue_tag_policies_clean

#: (from, to) moves of ``Queue.status``; asking for the status a queue already has changes nothing.
STATUS_MOVES = {
    (Queue.Status.ACTIVE, Queue.Status.PAUSED),  # pause
    (Queue.Status.PAUSED, Queue.Status.ACTIVE),  # resume
    (Queue.Status.ACTIVE, Queue.Status.CLOSED),  # close
    (Queue.Status.PAUSED, Queue.Status.CLOSED),  # close
    (Queue.Status.CLOSED, Queue.Status.ACTIVE),  # reopen
}

#: The settings ``queue_update_settings`` changes, each safe while raters work (see there).
QUEUE_EDITABLE_SETTINGS = (
    "overlap",
    "lease_seconds",
    "max_open_leases",
    "priority",
    "guidelines",
    "content_warning",
    "content_warning_category",
    "gold_min_accuracy",
    "gold_min_items",
    "review_disagreement",
    "disturbing",
    "daily_cap",
    "break_after",
    "tag_policies",
)

MAX_OVERLAP = 50
MIN_LEASE_SECONDS = 30
MAX_OPEN_LEASES = 50
CONTENT_WARNING_MAX_LENGTH = Queue._meta.get_field("content_warning").max_length or 200


def queue_set_status(*, queue: Queue, status: str) -> Queue:
    """Pause, resume, close or reopen the queue (see the moves above), under the queue's row lock.

    Asking for the status it has is a no-op (a double click pauses once). A move not in the table
    (a closed queue paused) is refused with Conflict naming both states; nothing changes then.
    """
    if status not in Queue.Status.values:
        raise ApplicationError(f"status: must be one of {', '.join(Queue.Status.values)}", field="status")
    with transaction.atomic():
        locked = Queue.objects.select_for_update().get(pk=queue.pk)
        if locked.status != status:
            if (locked.status, status) not in STATUS_MOVES:
                raise Conflict(
                    f"status: a {locked.status} queue cannot be made {status}"
                    + (" (reopen it first: make it active)" if locked.status == Queue.Status.CLOSED else ""),
                    field="status",
                )
            audit_record("queue.status", target=locked, changes={"status": [locked.status, status]})
            locked.status = status
            locked.save(update_fields=["status"])
    queue.status = locked.status
    return queue


def queue_update_settings(*, queue: Queue, **changes: Any) -> Queue:
    """Change the queue's safe settings, all or nothing; every error names its field.

    - ``overlap`` (1..50) may grow at any time, and shrink only down to the highest ``claimed`` of
      any real item (``queue_overlap_floor``): an item never holds more leases and judgments than
      its overlap. The items that could go past the new overlap are locked while it is checked, and
      claims compare with the overlap as stored when their statement runs (``current_overlap``,
      ``statements.claim_pick_item``): a claim either waits for this change or sees it, and skips
      the locked items meanwhile, so no item goes past the new overlap.
    - ``lease_seconds`` (30 to 2147483647) applies to leases made from now on; leases held keep
      theirs.
    - ``max_open_leases`` (1..50), ``priority`` (a 32-bit integer), ``guidelines``,
      ``content_warning`` (at most 200 characters) and ``content_warning_category`` (a category or
      empty) apply to the next claim.
    - ``gold_min_accuracy`` (0..1 or None: off) and ``gold_min_items`` (at least 1) apply from the
      rater's next gold answer (``labeling.services.pauses``); ``review_disagreement`` (0..1 or
      None: only flagged items) applies to the review list at once.
    - ``disturbing`` (true: only raters who opted in are sent here), ``daily_cap`` (items per rater
      per UTC day, at least 1, or None: no cap) and ``break_after`` (offer a break after this many
      items in a row, at least 1, or None: never) apply to the next claim
      (``labeling.services.wellbeing``).
    - ``tag_policies`` (sensitive topics, checked by ``queue_tag_policies_clean`` against the
      queue's new overlap) replaces the policies whole. A tag's overlap may shrink, and a share
      may drop, only as far as the work already done allows (``queue_tag_policies_check_change``,
      which locks the items concerned as for ``overlap``); claims that start after the change
      follow it.

    Each value is checked by ``queue_setting_clean``.
    """
    unknown = sorted(set(changes) - set(QUEUE_EDITABLE_SETTINGS))
    if unknown:
        raise ApplicationError(
            f"{unknown[0]}: cannot be changed here (changeable: {', '.join(QUEUE_EDITABLE_SETTINGS)})",
            field=unknown[0],
        )
    clean = {key: queue_setting_clean(key, value) for key, value in changes.items() if key != "tag_policies"}
    if not changes:
        return queue
    with transaction.atomic():
        locked = Queue.objects.select_for_update().get(pk=queue.pk)
        if "tag_policies" in changes:
            new_overlap = clean.get("overlap", locked.overlap)
            clean["tag_policies"] = queue_tag_policies_clean(changes["tag_policies"], overlap=new_overlap)
            if clean["tag_policies"] != locked.tag_policies:
                queue_tag_policies_check_change(
                    queue=locked, overlap=new_overlap, policies=clean["tag_policies"]
                )
        overlap = clean.get("overlap")
        if overlap is not None and overlap < locked.overlap:
            # Lock the items a claim could take past the new overlap, then read the highest count.
            list(
                QueueItem.objects.select_for_update()
                .filter(queue=locked, is_gold=False, claimed__gte=overlap)
                .values_list("pk", flat=True)
            )
            floor = queue_overlap_floor(queue=locked)
            if overlap < floor:
                raise Conflict(
                    f"overlap: cannot go below {floor}: an item already has {floor} leases and judgments",
                    field="overlap",
                )
        changed = audit_changes({key: getattr(locked, key) for key in clean}, clean)
        if changed:
            audit_record("queue.update", target=locked, changes=changed)
        for key, value in clean.items():
            setattr(locked, key, value)
        locked.save(update_fields=list(clean))
    for key, value in clean.items():
        setattr(queue, key, value)
    return queue


#: The settings' own bounds, within their columns' (``column_check`` adds the column's range).
SETTING_BOUNDS: dict[str, tuple[int | None, int | None]] = {
    "overlap": (1, MAX_OVERLAP),
    "lease_seconds": (MIN_LEASE_SECONDS, None),
    "max_open_leases": (1, MAX_OPEN_LEASES),
    "priority": (None, None),
    "gold_min_items": (1, None),
    # Wellbeing: None is off (both columns are nullable).
    "daily_cap": (1, None),
    "break_after": (1, None),
}
#: Shares 0..1, or None (off): the gold auto-pause and the review threshold.
FRACTION_SETTINGS = ("gold_min_accuracy", "review_disagreement")


def queue_setting_clean(key: str, value: Any) -> Any:
    """One queue setting, checked as it is stored: the same rule when a queue is created
    (``queue_create_with_items``) and changed (``queue_update_settings``).

    Numbers must be whole and within their own bounds and their column's range (``lease_seconds``
    from 30 up to the column's 2147483647, ``priority`` within its column); texts must fit their
    column (``content_warning`` at most 200 characters) and are stripped; ``content_warning_category``
    is empty or a category. Raises ApplicationError naming the setting and the limit.
    """
    field = Queue._meta.get_field(key)
    if key in SETTING_BOUNDS:
        low, high = SETTING_BOUNDS[key]
        return column_check(field, value, low=low, high=high)
    if key in FRACTION_SETTINGS:
        return column_check(field, value, low=0, high=1)
    if key == "disturbing":
        return column_check(field, value)
    if not isinstance(value, str):
        raise ApplicationError(f"{key}: must be text", field=key)
    value = column_check(field, value.strip())
    if key == "content_warning_category" and value not in ("", *ContentCategory.values):
        raise ApplicationError(
            f"content_warning_category: must be empty or one of {', '.join(ContentCategory.values)}",
            field="content_warning_category",
        )
    return value


def queue_set_members(*, queue: Queue, users: Iterable[User]) -> Queue:
    """Make exactly these users the queue's members. Someone removed gets nothing new from the
    queue; an item they hold stays theirs until they submit it or the lease expires."""
    chosen = list({user.pk: user for user in users}.values())
    before = set(queue.members.values_list("username", flat=True))
    after = {user.username for user in chosen}
    if before != after:
        audit_record(
            "queue.members",
            target=queue,
            changes={"added": sorted(after - before), "removed": sorted(before - after)},
        )
    queue.members.set(chosen)
    return queue


def queue_update(
    *, queue: Queue, status: str | None = None, members: Iterable[User] | None = None, **settings: Any
) -> Queue:
    """Settings, members and status in one go, all or nothing (the API's ``PATCH``)."""
    with transaction.atomic():
        if settings:
            queue_update_settings(queue=queue, **settings)
        if members is not None:
            queue_set_members(queue=queue, users=members)
        if status is not None:
            queue_set_status(queue=queue, status=status)
    return queue
