"""Adjudication reads: which items of a queue are contested, the reviewer gatekeeper, what a
reviewer sees of an item, and the adjudicated labels the exports use.

Everything a reviewer sees is in the comparison's stored candidate order (positions 0..K-1,
shown as "Response 1".."Response K"), never in the labels a rater was shown: each judgment is
re-expressed through its assignment's ``shown_order``. Raters appear under a pseudonym that is
stable within a queue (a keyed hash), never their name or id.

The review list is computed from the judgments on every read (nothing stored can go stale); a
pairwise queue's in the database (per item: judgments each way and flags raised, only the items
that may be contested come back), a ranking queue's row by row:
- disagreement: for a pair, each judgment's direction (first response better, tie, second
  better); for a ranking, its top group. The item's disagreement is the share of its judgments
  against the most common direction; with at least two judgments and the queue's
  ``review_disagreement`` set, an item whose disagreement exceeds it is contested;
- flagged: any judgment that answered one of the rubric's flag criteria (in ``criteria`` or
  ``flags``). "Both are bad" and content warnings are answers, not flags for review.
Gold items (their answer is known) and conversation queues are never reviewed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Max, Q, Value, When
from django.utils.crypto import salted_hmac

from comparisons.models import ComparisonCandidate
from labeling.errors import ApplicationError, Conflict, NotFound, id_or_none
from labeling.models import Assignment, Criterion, Judgment, Queue, QueueItem, Review, User
from labeling.selectors.assignments import LABELS
from labeling.selectors.content_warnings import CONTENT_WARNING_PREFIX
from labeling.selectors.quality import comparison_orders, preference_in_positions, ranking_in_positions
from labeling.selectors.stats_facts import facts_queryset

#: Queue kinds whose items can be reviewed.
REVIEWABLE_KINDS = (Queue.Kind.PAIRWISE, Queue.Kind.RANKING)
BOTH_BAD_FLAG = "both_bad"


def user_may_review(user: User) -> bool:
    return bool(user.is_authenticated and (user.is_admin_role or user.role == User.Role.REVIEWER))


def _require_reviewer(user: User) -> None:
    if not user_may_review(user):
        raise ApplicationError("Only reviewers and admins review items.", status_code=403)


def rater_pseudonym(*, queue_id: int, rater_id: int) -> str:
    """A rater's name for reviewers: the same in one queue, unrelated across queues, not reversible."""
    return "rater-" + salted_hmac("preflab.review.rater", f"{queue_id}:{rater_id}").hexdigest()[:6]


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def _flag_keys(rubric_ids: set[int]) -> set[str]:
    return set(
        Criterion.objects.filter(rubric_id__in=rubric_ids, kind=Criterion.Kind.FLAG).values_list(
            "key", flat=True
        )
    )


def judgment_review_flags(*, flags: list[str], criteria: dict[str, Any], flag_keys: set[str]) -> list[str]:
    """The flags of a judgment that send its item to review (see the module docstring)."""
    raised = {f for f in flags or [] if f != BOTH_BAD_FLAG and not f.startswith(CONTENT_WARNING_PREFIX)}
    raised |= {key for key in flag_keys if (criteria or {}).get(key) is True}
    return sorted(raised)


def item_disagreement(directions: list[Any]) -> float:
    """The share of judgments against the most common direction (0 with fewer than two)."""
    if len(directions) < 2:
        return 0.0
    top = Counter(directions).most_common(1)[0][1]
    return 1 - top / len(directions)


def queue_review_items(
    *, queue: Queue, reviewer: User | None = None, pending: bool = True
) -> list[dict[str, Any]]:
    """The queue's contested items (see the module docstring), by item id: each with its number
    of judgments, disagreement, reasons, flags, whether it is reviewed, and (given a reviewer)
    whether that reviewer judged it (they may not review it). ``pending``: only unreviewed ones."""
    if queue.kind not in REVIEWABLE_KINDS:
        return []
    if queue.kind == Queue.Kind.PAIRWISE:
        by_item = _pair_items_contested(queue, disagreement=queue.review_disagreement is not None)
    else:
        by_item = _items_row_by_row(queue)
    return _review_list(queue, by_item, reviewer=reviewer, pending=pending)


def _items_row_by_row(queue: Queue) -> dict[int, dict[str, Any]]:
    """Per judged item (gold left out): its judgments' directions in stored order and the review
    flags they raised, read one judgment at a time (any queue kind)."""
    rows = list(
        Judgment.objects.filter(assignment__item__queue=queue, assignment__item__is_gold=False)
        .order_by("assignment__item_id", "id")
        .values_list(
            "assignment__item_id",
            "assignment__item__comparison_id",
            "assignment__shown_order",
            "preference",
            "ranking",
            "flags",
            "criteria",
            "rubric_id",
        )
    )
    flag_keys = _flag_keys({r[7] for r in rows})
    canon = comparison_orders([r[1] for r in rows])
    by_item: dict[int, dict[str, Any]] = {}
    for item_id, comparison_id, shown, preference, ranking, flags, criteria, _ in rows:
        entry = by_item.setdefault(
            item_id, {"item": item_id, "comparison": comparison_id, "directions": [], "flags": set()}
        )
        if preference is not None:
            direction: Any = _sign(
                preference_in_positions(
                    preference=preference, shown_order=shown, canonical=canon[comparison_id]
                )
            )
        else:
            groups = ranking_in_positions(
                ranking=ranking or [], shown_order=shown, canonical=canon[comparison_id]
            )
            direction = tuple(groups[0])
        entry["directions"].append(direction)
        entry["flags"] |= set(judgment_review_flags(flags=flags, criteria=criteria, flag_keys=flag_keys))
    return by_item


def _review_list(
    queue: Queue, by_item: dict[int, dict[str, Any]], *, reviewer: User | None, pending: bool
) -> list[dict[str, Any]]:
    """The contested items among ``by_item`` (each with its ``directions`` and raised ``flags``)."""
    reviewed = set(Review.objects.filter(item__queue=queue).values_list("item_id", flat=True))
    own: set[int] = set()
    if reviewer is not None:
        own = set(
            Assignment.objects.filter(
                item__queue=queue, rater=reviewer, status=Assignment.Status.SUBMITTED
            ).values_list("item_id", flat=True)
        )
    threshold = queue.review_disagreement
    found = []
    for item_id, entry in sorted(by_item.items()):
        n = len(entry["directions"])
        share = item_disagreement(entry["directions"])
        reasons = []
        if threshold is not None and n >= 2 and share > threshold:
            reasons.append("disagreement")
        if entry["flags"]:
            reasons.append("flagged")
        if not reasons or (pending and item_id in reviewed):
            continue
        found.append(
            {
                "item": item_id,
                "comparison": entry["comparison"],
                "judgments": n,
                "disagreement": round(share, 4),
                "reasons": reasons,
                "flags": sorted(entry["flags"]),
                "reviewed": item_id in reviewed,
                "judged_by_you": item_id in own,
            }
        )
    return found


def _pair_items_contested(queue: Queue, *, disagreement: bool = True) -> dict[int, dict[str, Any]]:
    """``queue_review_items``' per-item evidence for a pairwise queue, aggregated in the database:
    per item, how many judgments point each way in the stored order and which review flags were
    raised, only for items that may be contested (flagged, or, with ``disagreement``, not
    unanimous); the directions come back as a list of the same counts, so the shares are computed
    as for any queue."""
    rubric_ids = set(
        Judgment.objects.filter(assignment__item__queue=queue).values_list("rubric_id", flat=True).distinct()
    )
    flag_keys = sorted(_flag_keys(rubric_ids))
    queryset, _keys = facts_queryset(queue, [(key, Criterion.Kind.FLAG) for key in flag_keys])
    # The direction in the comparison's stored order: the shown preference's sign, turned over
    # when the pair was shown swapped.
    first_better = Q(preference__lt=0, swapped=0) | Q(preference__gt=0, swapped=1)
    second_better = Q(preference__gt=0, swapped=0) | Q(preference__lt=0, swapped=1)
    raised = {
        f"raised_{i}": Max(
            Case(When(**{f"answer_{i}": 1}, then=Value(1)), default=Value(0), output_field=IntegerField())
        )
        for i in range(len(flag_keys))
    }
    rows = (
        queryset.filter(assignment__item__is_gold=False)
        .values("assignment__item_id", "assignment__item__comparison_id")
        .annotate(
            n=Count("id"),
            first=Count("id", filter=first_better),
            tie=Count("id", filter=Q(preference=0)),
            second=Count("id", filter=second_better),
            **raised,
        )
        .order_by("assignment__item_id")
    )
    any_raised = Q()
    for name in raised:
        any_raised |= Q(**{name: 1})
    split = Q(n__gte=2) & ~Q(first=F("n")) & ~Q(tie=F("n")) & ~Q(second=F("n"))
    if disagreement:
        rows = rows.filter(any_raised | split)
    elif raised:
        rows = rows.filter(any_raised)
    else:
        return {}
    by_item: dict[int, dict[str, Any]] = {}
    for row in rows:
        directions = [-1] * row["first"] + [0] * row["tie"] + [1] * row["second"]
        by_item[row["assignment__item_id"]] = {
            "item": row["assignment__item_id"],
            "comparison": row["assignment__item__comparison_id"],
            "directions": directions,
            "flags": {key for i, key in enumerate(flag_keys) if row[f"raised_{i}"]},
        }
    return by_item


def review_queue_get(*, reviewer: User, queue_id: Any) -> Queue:
    """A queue to review: 403 unless a reviewer or admin, 404 unless a pairwise or ranking queue."""
    _require_reviewer(reviewer)
    pk = id_or_none(queue_id, Queue._meta.pk)
    queue = Queue.objects.filter(pk=pk, kind__in=REVIEWABLE_KINDS).first() if pk is not None else None
    if queue is None:
        raise NotFound("No such queue.")
    return queue


def review_item_get_for_reviewer(*, reviewer: User, item_id: Any) -> QueueItem:
    """The one way to fetch an item to review (both doors): 403 unless the user is a reviewer or
    an admin, 404 for no such item (or a gold or conversation item), 403 if the reviewer judged
    the item themselves (nobody reviews their own work), 409 for an item nobody judged yet."""
    _require_reviewer(reviewer)
    pk = id_or_none(item_id, QueueItem._meta.pk)
    item = (
        QueueItem.objects.select_related("queue__rubric", "comparison__prompt")
        .filter(pk=pk, is_gold=False, queue__kind__in=REVIEWABLE_KINDS)
        .first()
        if pk is not None
        else None
    )
    if item is None:
        raise NotFound("No such item to review.")
    if Assignment.objects.filter(item=item, rater=reviewer, status=Assignment.Status.SUBMITTED).exists():
        raise ApplicationError(
            "You judged this item yourself: another reviewer must review it.", status_code=403
        )
    if item.judged == 0:
        raise Conflict("Nobody has judged this item yet: there is nothing to review.")
    return item


def review_payload(review: Review) -> dict[str, Any]:
    return {
        "id": review.pk,
        "item": review.item_id,
        "reviewer": review.reviewer.username,
        "preference": review.preference,
        "ranking": review.ranking,
        "note": review.note,
        "created_at": review.created_at,
    }


def _criteria_in_positions(
    answers: dict[str, Any], kinds: dict[str, str], shown: list[int], canonical: list[int]
) -> dict[str, Any]:
    """A judgment's criteria answers in stored order: Likert scores keyed by response number
    ("1".."K"), preference criteria as a stored-order preference, the rest as given."""
    position = {cid: i for i, cid in enumerate(canonical)}
    out: dict[str, Any] = {}
    for key, value in (answers or {}).items():
        kind = kinds.get(key)
        if kind == Criterion.Kind.PREFERENCE and isinstance(value, int):
            out[key] = preference_in_positions(preference=value, shown_order=shown, canonical=canonical)
        elif kind == Criterion.Kind.LIKERT and isinstance(value, dict):
            scores = {str(position[shown[LABELS.index(label)]] + 1): s for label, s in value.items()}
            out[key] = dict(sorted(scores.items()))
        else:
            out[key] = value
    return out


def review_item_payload(*, item: QueueItem) -> dict[str, Any]:
    """What a reviewer sees of an item: the prompt, the responses and every judgment (rationale,
    criteria, flags) in the comparison's stored order, raters pseudonymous; the stored review."""
    queue = item.queue
    members = list(
        ComparisonCandidate.objects.filter(comparison_id=item.comparison_id)
        .order_by("position")
        .select_related("candidate")
    )
    canonical = [m.candidate_id for m in members]
    judgments = list(
        Judgment.objects.filter(assignment__item=item).select_related("assignment").order_by("id")
    )
    kinds = dict(
        Criterion.objects.filter(rubric_id__in={j.rubric_id for j in judgments}).values_list("key", "kind")
    )
    flag_keys = {k for k, kind in kinds.items() if kind == Criterion.Kind.FLAG}
    shown = []
    directions: list[Any] = []
    for j in judgments:
        order = j.assignment.shown_order
        entry: dict[str, Any] = {
            "rater": rater_pseudonym(queue_id=queue.pk, rater_id=j.assignment.rater_id),
            "preference": None,
            "ranking": None,
            "criteria": _criteria_in_positions(j.criteria, kinds, order, canonical),
            "flags": j.flags,
            "review_flags": judgment_review_flags(flags=j.flags, criteria=j.criteria, flag_keys=flag_keys),
            "rationale": j.rationale,
            "active_seconds": j.active_seconds,
            "created_at": j.created_at,
        }
        if j.preference is not None:
            entry["preference"] = preference_in_positions(
                preference=j.preference, shown_order=order, canonical=canonical
            )
            directions.append(_sign(entry["preference"]))
        else:
            entry["ranking"] = ranking_in_positions(
                ranking=j.ranking or [], shown_order=order, canonical=canonical
            )
            directions.append(tuple(entry["ranking"][0]))
        shown.append(entry)
    review = Review.objects.select_related("reviewer").filter(item=item).first()
    return {
        "item": item.pk,
        "queue": queue.pk,
        "queue_name": queue.name,
        "kind": queue.kind,
        "comparison": item.comparison_id,
        "prompt": item.comparison.prompt.messages,
        "responses": [{"position": m.position, "text": m.candidate.text} for m in members],
        "judgments": shown,
        "disagreement": round(item_disagreement(directions), 4),
        "review": review_payload(review) if review is not None else None,
    }


def adjudicated_labels(
    *, comparison_ids: list[int] | None, queue_ids: list[int] | None = None
) -> dict[int, dict[str, Any]]:
    """Per comparison id, the reviewer's final label in the comparison's stored candidate order:
    ``{"preference": -3..3}`` (negative = position 0 better) or ``{"ranking": [[0], [2, 1]]}``
    (groups of positions, best first), with ``review`` (its id) and ``queue``. A comparison
    reviewed in several queues takes its latest review (``queue_ids``: only reviews made in those
    queues; ``comparison_ids`` None: every comparison). Comparisons without one are absent (the
    export falls back to the majority). One query."""
    reviews = Review.objects.all()
    if comparison_ids is not None:
        reviews = reviews.filter(item__comparison_id__in=set(comparison_ids))
    if queue_ids is not None:
        reviews = reviews.filter(item__queue_id__in=set(queue_ids))
    labels: dict[int, dict[str, Any]] = {}
    for review_id, comparison_id, queue_id, preference, ranking in reviews.order_by(
        "created_at", "id"
    ).values_list("id", "item__comparison_id", "item__queue_id", "preference", "ranking"):
        label: dict[str, Any] = {"preference": preference} if preference is not None else {"ranking": ranking}
        labels[comparison_id] = {**label, "review": review_id, "queue": queue_id}
    return labels
