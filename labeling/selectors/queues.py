"""Reads of queues: the queue gatekeeper for raters, lists, a rater's progress, rubric criteria."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Count, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from labeling.models import Assignment, Criterion, Queue, Rubric, User
from labeling.selectors.tag_policies import ItemOverlap
from labeling.sql import statements
from labeling.sql.hydrate import is_bigint


def queue_get_for_rater(*, rater: User, queue_id: Any) -> Queue:
    """The one way to fetch a queue to work on: with its rubric, if the rater is a member, else
    404 (never 403: a queue someone may not work on is as absent as one that does not exist).
    One hand-written join (see ``statements.queue_for_member``): every claim starts here."""
    try:
        pk = int(queue_id)
    except (ValueError, TypeError):
        raise Http404("No such queue.")
    found = statements.queue_for_member.instances(queue_id=pk, rater_id=rater.pk) if is_bigint(pk) else None
    if found is None:
        raise Http404("No such queue.")
    queue, rubric = found
    queue.rubric = rubric
    return cast(Queue, queue)


def current_overlap(*, queue_id: int) -> Subquery:
    """The queue's overlap as the database has it when the statement runs (not as read earlier in
    the request): writes that compare a count with the overlap use this, so an overlap an admin
    lowered is honoured at once (``queue_update_settings`` locks the items it could overfill).
    In a queue with per-tag policies an item's overlap may be higher: use
    ``labeling.selectors.tag_policies.ItemOverlap`` there."""
    return Subquery(Queue.objects.filter(pk=queue_id).values("overlap")[:1])


def queue_list_for_user(*, user: User) -> QuerySet[Queue]:
    """Queues the user may work on: members see their active queues (without the ones marked
    disturbing unless they opted in to those); admins and researchers see all."""
    qs = Queue.objects.select_related("rubric")
    if user.is_admin_role or user.role == User.Role.RESEARCHER:
        return qs.order_by("-priority", "id")
    mine = qs.filter(members=user, status=Queue.Status.ACTIVE)
    if not user.disturbing_opt_in:
        mine = mine.exclude(disturbing=True)
    return mine.order_by("-priority", "id")


def queue_stats_for_rater(*, rater: User, queues: list[Queue]) -> dict[int, dict[str, int]]:
    """Per queue: items this rater could still get, and what they judged today (two queries)."""
    ids = [q.pk for q in queues]
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    done_today = dict(
        Assignment.objects.filter(
            rater=rater, item__queue_id__in=ids, status=Assignment.Status.SUBMITTED, updated_at__gte=today
        )
        .values_list("item__queue_id")
        .annotate(n=Count("id"))
        .values_list("item__queue_id", "n")
    )
    stats: dict[int, dict[str, int]] = {}
    for queue in queues:
        # Each item against its own overlap (higher for some tags in a queue with tag policies).
        room = ItemOverlap.for_queue(queue) if queue.tag_policies else queue.overlap
        available = (
            queue.items.filter(claimed__lt=room).exclude(assignments__rater=rater).count()
            if queue.status == Queue.Status.ACTIVE
            else 0
        )
        stats[queue.pk] = {"available": available, "done_today": done_today.get(queue.pk, 0)}
    return stats


def rater_queue_progress(*, rater: User, queue: Queue) -> dict[str, int]:
    """Done today and left for this rater in one queue (for the judging page's header)."""
    return queue_stats_for_rater(rater=rater, queues=[queue])[queue.pk]


_FROZEN_CRITERIA: dict[tuple[int, Any], list[Criterion]] = {}


def rubric_criteria(rubric: Rubric) -> list[Criterion]:
    """A rubric's criteria in order. Frozen rubrics never change, so their criteria are cached
    per process (one query saved on every claim and every submission)."""
    # created_at in the key: a row id can come back (SQLite reuses them after a delete).
    key = (rubric.pk, rubric.created_at)
    cached = _FROZEN_CRITERIA.get(key)
    if cached is not None:
        return cached
    criteria = list(Criterion.objects.filter(rubric_id=rubric.pk).order_by("position", "id"))
    if rubric.frozen:
        _FROZEN_CRITERIA[key] = criteria
    return criteria
