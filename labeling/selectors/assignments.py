"""Reads of assignments for raters. What a rater may touch is fetched only through the
gatekeepers here and in ``labeling.selectors.queues``, which 404 otherwise."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.http import Http404
from django.utils import timezone

from comparisons.models import Candidate
from labeling.models import Assignment, Queue, User
from labeling.selectors.queues import rubric_criteria
from labeling.selectors.tag_policies import queue_item_overlap
from labeling.sql import statements
from labeling.sql.hydrate import is_bigint

#: The labels responses are shown under, in shown order (at most 9 per comparison).
LABELS = "ABCDEFGHI"


def assignment_get_for_rater(*, rater: User, assignment_id: int) -> Assignment:
    """The one way to fetch an assignment for a rater: their own, or 404 (never 403, never a leak)."""
    try:
        pk = int(assignment_id)
    except (ValueError, TypeError):
        raise Http404("No such assignment.")
    if not is_bigint(pk):
        raise Http404("No such assignment.")
    found = statements.assignment_for_rater.instances(assignment_id=pk, rater_id=rater.pk)
    if found is None:
        raise Http404("No such assignment.")
    assignment, item, queue, rubric, comparison, prompt = found
    queue.rubric = rubric
    comparison.prompt = prompt
    item.queue = queue
    item.comparison = comparison
    assignment.item = item
    return cast(Assignment, assignment)


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
                for c in rubric_criteria(rubric)
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


def rater_last_undoable(*, rater: User, queue: Queue, now: datetime | None = None) -> Assignment | None:
    """The rater's latest submitted assignment in ``queue`` if it may still be reopened (undo).

    It may while its lease would still be valid (``expires_at`` in the future) and its item is
    still open (not retired, within its overlap). ``judgment_undo_last`` re-checks under lock.
    """
    now = now or timezone.now()
    last = (
        Assignment.objects.filter(rater=rater, item__queue=queue, status=Assignment.Status.SUBMITTED)
        .select_related("item")
        .order_by("-updated_at", "-id")
        .first()
    )
    if last is None or last.expires_at <= now or last.item.retired:
        return None
    if last.item.claimed > queue_item_overlap(queue=queue, item=last.item):
        return None
    return last
