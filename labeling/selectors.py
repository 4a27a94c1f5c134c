"""Reads for labeling. What a rater may touch is fetched only through the gatekeepers here."""

from __future__ import annotations

import functools
from typing import Any, cast

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from comparisons.models import Candidate, Comparison, ComparisonCandidate, Prompt
from labeling import rows
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem, Rubric, User

LABELS = "ABCDEFGHI"


# The assignment with its item, queue, rubric, comparison and prompt: one hand-written join
# (see labeling.rows), since every judgment reads it.
_FOR_RATER = (Assignment, QueueItem, Queue, Rubric, Comparison, Prompt)


@functools.cache
def _assignment_for_rater_sql(vendor: str) -> str:
    assignment, item, queue, rubric, comparison, prompt = (rows.table(m) for m in _FOR_RATER)
    q = rows.quote
    return (
        f"SELECT {rows.select_list(*_FOR_RATER)} FROM {assignment}"
        f" INNER JOIN {item} ON {item}.{q('id')} = {assignment}.{q('item_id')}"
        f" INNER JOIN {queue} ON {queue}.{q('id')} = {item}.{q('queue_id')}"
        f" INNER JOIN {rubric} ON {rubric}.{q('id')} = {queue}.{q('rubric_id')}"
        f" INNER JOIN {comparison} ON {comparison}.{q('id')} = {item}.{q('comparison_id')}"
        f" INNER JOIN {prompt} ON {prompt}.{q('id')} = {comparison}.{q('prompt_id')}"
        f" WHERE {assignment}.{q('id')} = %s AND {assignment}.{q('rater_id')} = %s"
    )


@functools.cache
def _queue_sql(vendor: str) -> str:
    queue, rubric = rows.table(Queue), rows.table(Rubric)
    q = rows.quote
    return (
        f"SELECT {rows.select_list(Queue, Rubric)} FROM {queue}"
        f" INNER JOIN {rubric} ON {rubric}.{q('id')} = {queue}.{q('rubric_id')} WHERE {queue}.{q('id')} = %s"
    )


def queue_get(*, queue_id: int) -> Queue | None:
    """A queue with its rubric (one join: every claim starts here), or None."""
    if not rows.is_bigint(queue_id):
        return None
    found = rows.fetch_one(_queue_sql(connection.vendor), [queue_id], (Queue, Rubric))
    if found is None:
        return None
    queue, rubric = found
    queue.rubric = rubric
    return cast(Queue, queue)


def assignment_get_for_rater(*, rater: User, assignment_id: int) -> Assignment:
    """The one way to fetch an assignment for a rater: their own, or 404 (never 403, never a leak)."""
    try:
        pk = int(assignment_id)
    except (ValueError, TypeError):
        raise Http404("No such assignment.")
    if not rows.is_bigint(pk):
        raise Http404("No such assignment.")
    found = rows.fetch_one(_assignment_for_rater_sql(connection.vendor), [pk, rater.pk], _FOR_RATER)
    if found is None:
        raise Http404("No such assignment.")
    assignment, item, queue, rubric, comparison, prompt = found
    queue.rubric = rubric
    comparison.prompt = prompt
    item.queue = queue
    item.comparison = comparison
    assignment.item = item
    return cast(Assignment, assignment)


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


def judged_count(*, queue: Queue) -> int:
    return queue.items.aggregate(n=Count("assignments", filter=Q(assignments__status="submitted")))["n"] or 0


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def preference_in_positions(*, preference: int, shown_order: list[int], canonical: list[int]) -> int:
    """A pairwise preference given in shown labels, re-expressed for the comparison's stored order.

    Negative means the comparison's first candidate (position 0) is better.
    """
    return preference if shown_order[0] == canonical[0] else -preference


def ranking_in_positions(
    *, ranking: list[list[str]], shown_order: list[int], canonical: list[int]
) -> list[list[int]]:
    """A ranking of shown labels, as groups of the comparison's candidate positions (best first)."""
    position = {cid: i for i, cid in enumerate(canonical)}
    return [sorted(position[shown_order[LABELS.index(label)]] for label in group) for group in ranking]


def judgment_matches_gold(*, judgment: Judgment, gold: dict[str, Any], canonical: list[int]) -> bool:
    shown = judgment.assignment.shown_order
    if judgment.preference is not None and "preference" in gold:
        mine = preference_in_positions(preference=judgment.preference, shown_order=shown, canonical=canonical)
        return _sign(mine) == _sign(int(gold["preference"]))
    if judgment.ranking is not None and "ranking" in gold:
        mine_r = ranking_in_positions(ranking=judgment.ranking, shown_order=shown, canonical=canonical)
        return sorted(mine_r[0]) == sorted(gold["ranking"][0])
    return False


def rater_gold_accuracy(*, rater: User, queue_id: int) -> tuple[int, float]:
    """How many gold items of a queue the rater answered, and the share answered correctly."""
    judgments = list(
        Judgment.objects.filter(
            assignment__rater=rater, assignment__item__queue_id=queue_id, assignment__item__is_gold=True
        ).select_related("assignment__item")
    )
    if not judgments:
        return 0, 0.0
    canon = comparison_orders([j.assignment.item.comparison_id for j in judgments])
    correct = sum(
        judgment_matches_gold(
            judgment=j,
            gold=j.assignment.item.gold_answer or {},
            canonical=canon[j.assignment.item.comparison_id],
        )
        for j in judgments
    )
    return len(judgments), correct / len(judgments)


def comparison_orders(comparison_ids: list[int]) -> dict[int, list[int]]:
    """Candidate ids of each comparison in stored order (position 0 first), in one query."""
    orders: dict[int, list[int]] = {}
    for cid, cand in (
        ComparisonCandidate.objects.filter(comparison_id__in=set(comparison_ids))
        .order_by("comparison_id", "position")
        .values_list("comparison_id", "candidate_id")
    ):
        orders.setdefault(cid, []).append(cand)
    return orders


# ------------------------------------------------------------------ rater workbench (issue 5)

#: A prompt tag (set by an admin) or a judgment flag (set by a rater) ``cw:<category>`` puts a
#: content warning on every item showing that prompt.
CONTENT_WARNING_PREFIX = "cw:"
#: Rubric flag criteria / judgment flags that also count as a warning for later raters.
CONTENT_WARNING_FLAGS = {"harmful": "other", "disturbing": "other", "unsafe": "other", "nsfw": "sexual"}


def _warning_category(name: str) -> str | None:
    from labeling.models import ContentCategory

    name = name.strip().lower()
    if name.startswith(CONTENT_WARNING_PREFIX):
        cat = name[len(CONTENT_WARNING_PREFIX) :]
        return cat if cat in ContentCategory.values else ContentCategory.OTHER.value
    if name in ContentCategory.values:
        return name
    return CONTENT_WARNING_FLAGS.get(name)


def content_warnings_for_assignment(*, assignment: Assignment) -> list[dict[str, Any]]:
    """The content warnings an item carries, one entry per category, with where each came from.

    Sources: the queue's setting (``queue``), ``cw:<category>`` tags an admin put on the prompt
    (``admin``), and flags earlier raters set on any judgment of the same prompt (``rater``): a
    ``cw:<category>`` judgment flag, or a true rubric flag named like a category (or ``harmful``,
    ``disturbing``, ``unsafe``, ``nsfw``). Other raters' answers are never shown, only the category.
    """
    from labeling.models import ContentCategory

    queue = assignment.item.queue
    prompt = assignment.item.comparison.prompt
    found: dict[str, set[str]] = {}
    if queue.content_warning_category or queue.content_warning:
        found.setdefault(queue.content_warning_category or ContentCategory.OTHER.value, set()).add("queue")
    for tag in prompt.tags or []:
        if isinstance(tag, str) and tag.lower().startswith(CONTENT_WARNING_PREFIX):
            found.setdefault(_warning_category(tag) or ContentCategory.OTHER.value, set()).add("admin")
    earlier = (
        Judgment.objects.filter(assignment__item__comparison__prompt_id=prompt.pk)
        .exclude(assignment_id=assignment.pk)
        .values_list("flags", "criteria")
    )
    for flags, criteria in earlier:
        names = [f for f in flags or [] if isinstance(f, str)]
        names += [k for k, v in (criteria or {}).items() if v is True]
        for name in names:
            cat = _warning_category(name)
            if cat:
                found.setdefault(cat, set()).add("rater")
    labels = dict(ContentCategory.choices)
    return [
        {"category": cat, "label": labels[cat], "sources": sorted(found[cat])}
        for cat in ContentCategory.values
        if cat in found
    ]


def rater_last_undoable(*, rater: User, queue: Queue, now: Any = None) -> Assignment | None:
    """The rater's latest submitted assignment in ``queue`` if it may still be reopened (undo).

    It may while its lease would still be valid (``expires_at`` in the future) and its item is
    still open (not retired, within the queue's overlap). ``judgment_undo_last`` re-checks under lock.
    """
    now = now or timezone.now()
    last = (
        Assignment.objects.filter(rater=rater, item__queue=queue, status=Assignment.Status.SUBMITTED)
        .select_related("item")
        .order_by("-updated_at", "-id")
        .first()
    )
    if last is None or last.expires_at <= now or last.item.retired or last.item.claimed > queue.overlap:
        return None
    return last


def workbench_progress(*, rater: User, queue: Queue) -> dict[str, int]:
    """Done today and left for this rater in one queue (for the workbench header)."""
    return queue_stats_for_rater(rater=rater, queues=[queue])[queue.pk]
