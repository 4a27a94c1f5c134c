"""Adaptive pairing: Bradley-Terry ordering of a queue's items."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from labeling.models import Judgment, Queue, QueueItem

# ------------------------------------------------------------------------ adaptive pairing


def queue_reprioritize(*, queue: Queue, prompt_ids: Iterable[int] | None = None) -> int:
    """Adaptive pairing: order a pairwise queue's items by how uncertain their comparison is.

    Per prompt, a Bradley-Terry fit over the judgments so far scores each candidate; an item's
    priority grows as its two candidates' scores get closer and shrinks with every judgment it
    has. Claims take the highest priority first. Rows are updated in id order, so concurrent
    runs wait on each other instead of deadlocking. Returns how many items changed.
    """
    from labeling.ratings import bradley_terry, pair_uncertainty_priority
    from labeling.selectors.quality import comparison_orders, preference_in_positions

    items = QueueItem.objects.filter(queue=queue, is_gold=False).select_related("comparison")
    if prompt_ids is not None:
        items = items.filter(comparison__prompt_id__in=list(prompt_ids))
    item_list = list(items.order_by("id"))
    orders = comparison_orders([i.comparison_id for i in item_list])
    judged = Judgment.objects.filter(assignment__item__in=item_list, preference__isnull=False).values_list(
        "preference", "assignment__shown_order", "assignment__item__comparison_id"
    )
    outcomes: dict[int, list[tuple[int, int, float]]] = {}
    counts: dict[int, int] = {}
    prompt_of = {i.comparison_id: i.comparison.prompt_id for i in item_list}
    for preference, shown, comparison_id in judged:
        first, second = orders[comparison_id][:2]
        p = preference_in_positions(
            preference=preference or 0, shown_order=shown, canonical=orders[comparison_id]
        )
        score = 0.5 if p == 0 else (1.0 if p < 0 else 0.0)
        outcomes.setdefault(prompt_of[comparison_id], []).append((first, second, score))
        counts[comparison_id] = counts.get(comparison_id, 0) + 1
    scores: dict[int, dict[Any, float]] = {}
    changed = []
    for item in item_list:
        prompt_id = item.comparison.prompt_id
        if prompt_id not in scores:
            players = {
                c for i in item_list if i.comparison.prompt_id == prompt_id for c in orders[i.comparison_id]
            }
            scores[prompt_id] = bradley_terry(outcomes.get(prompt_id, []), players=players)
        first, second = orders[item.comparison_id][:2]
        gap = scores[prompt_id][first] - scores[prompt_id][second]
        priority = pair_uncertainty_priority(gap, counts.get(item.comparison_id, 0))
        if priority != item.priority:
            item.priority = priority
            changed.append(item)
    with transaction.atomic():
        QueueItem.objects.bulk_update(changed, ["priority"], batch_size=500)
    return len(changed)
