"""Judgments against each other and against gold: a preference or ranking re-expressed in the
comparison's stored candidate order, gold accuracy, and the stored orders themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from comparisons.models import ComparisonCandidate
from labeling.models import Judgment, User
from labeling.selectors.assignments import LABELS


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
    return answer_matches_gold(
        preference=judgment.preference,
        ranking=judgment.ranking,
        shown_order=judgment.assignment.shown_order,
        gold=gold,
        canonical=canonical,
    )


def answer_matches_gold(
    *,
    preference: int | None,
    ranking: list[list[str]] | None,
    shown_order: list[int],
    gold: dict[str, Any],
    canonical: list[int],
) -> bool:
    """Whether an answer (preference or ranking, in shown labels) agrees with the gold answer:
    the same direction for a preference, the same best group for a ranking."""
    if preference is not None and "preference" in gold:
        mine = preference_in_positions(preference=preference, shown_order=shown_order, canonical=canonical)
        return _sign(mine) == _sign(int(gold["preference"]))
    if ranking is not None and "ranking" in gold:
        mine_r = ranking_in_positions(ranking=ranking, shown_order=shown_order, canonical=canonical)
        return sorted(mine_r[0]) == sorted(gold["ranking"][0])
    return False


def rater_gold_accuracy(
    *, rater: User | int, queue_id: int, since: datetime | None = None
) -> tuple[int, float]:
    """How many gold items of a queue the rater answered (after ``since``, if given), and the
    share answered correctly."""
    found = Judgment.objects.filter(
        assignment__rater=rater, assignment__item__queue_id=queue_id, assignment__item__is_gold=True
    ).select_related("assignment__item")
    if since is not None:
        found = found.filter(created_at__gt=since)
    judgments = list(found)
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
