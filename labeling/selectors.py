"""Reads for labeling. What a rater may touch is fetched only through the gatekeepers here."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from comparisons.models import Candidate
from labeling.models import Assignment, Queue, User

LABELS = "ABCDEFGHI"


def assignment_get_for_rater(*, rater: User, assignment_id: int) -> Assignment:
    """The one way to fetch an assignment for a rater: their own, or 404 (never 403, never a leak)."""
    try:
        return Assignment.objects.select_related("item__queue__rubric", "item__comparison__prompt").get(
            pk=assignment_id, rater=rater
        )
    except (Assignment.DoesNotExist, ValueError, TypeError):
        raise Http404("No such assignment.")


def queue_list_for_user(*, user: User) -> QuerySet[Queue]:
    """Queues the user may work on: members see their active queues; admins and researchers see all."""
    qs = Queue.objects.select_related("rubric")
    if user.is_admin_role or user.role == User.Role.RESEARCHER:
        return qs.order_by("-priority", "id")
    return qs.filter(members=user, status=Queue.Status.ACTIVE).order_by("-priority", "id")


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
        available = (
            queue.items.filter(claimed__lt=queue.overlap).exclude(assignments__rater=rater).count()
            if queue.status == Queue.Status.ACTIVE
            else 0
        )
        stats[queue.pk] = {"available": available, "done_today": done_today.get(queue.pk, 0)}
    return stats


def assignment_payload(assignment: Assignment) -> dict[str, Any]:
    """What a rater sees: the conversation, labelled responses in the shown order, the rubric.

    Never the generator, the candidate ids or other raters' answers (blind judging).
    """
    item = assignment.item
    queue = item.queue
    comparison = item.comparison
    texts = dict(Candidate.objects.filter(pk__in=assignment.shown_order).values_list("pk", "text"))
    rubric = queue.rubric
    return {
        "id": assignment.pk,
        "queue": queue.pk,
        "kind": queue.kind,
        "status": assignment.status,
        "expires_at": assignment.expires_at,
        "prompt": comparison.prompt.messages,
        "responses": [
            {"label": LABELS[i], "text": texts[cid]} for i, cid in enumerate(assignment.shown_order)
        ],
        "rubric": {
            "id": rubric.pk,
            "name": rubric.name,
            "version": rubric.version,
            "criteria": [
                {
                    "key": c.key,
                    "question": c.question,
                    "help_text": c.help_text,
                    "kind": c.kind,
                    "required": c.required,
                }
                for c in rubric.criteria.all()
            ],
        },
        "guidelines": queue.guidelines,
        "content_warning": queue.content_warning,
    }


def rater_open_assignment(*, rater: User, queue: Queue) -> Assignment | None:
    return (
        Assignment.objects.filter(
            rater=rater, item__queue=queue, status=Assignment.Status.LEASED, expires_at__gt=timezone.now()
        )
        .select_related("item__queue__rubric", "item__comparison__prompt")
        .first()
    )


def judged_count(*, queue: Queue) -> int:
    return queue.items.aggregate(n=Count("assignments", filter=Q(assignments__status="submitted")))["n"] or 0
