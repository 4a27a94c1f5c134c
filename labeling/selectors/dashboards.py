"""Reads behind the admin queue dashboards: progress, throughput, per-rater quality, agreement."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from labeling.models import Assignment, Judgment, Queue, User
from labeling.selectors.quality import answer_matches_gold, comparison_orders
from labeling.selectors.stats_facts import JudgmentFacts, judgment_facts
from labeling.selectors.tag_policies import ItemOverlap


def queue_progress(*, queue: Queue) -> dict[str, Any]:
    """How far the queue is. ``judgments`` counts those on its real items still in play (not
    gold, not retired), the ones ``wanted`` (the sum of the items' overlaps: items x overlap, or
    more with per-tag policies) asks for; answers to gold items are ``gold_judgments``, so a queue
    full of gold answers never looks done."""
    items = queue.items.filter(is_gold=False, retired=False)
    if queue.tag_policies:  # each item's own overlap (labeling.selectors.tag_policies)
        items = items.annotate(room=ItemOverlap.for_queue(queue))
        overlap: Any = F("room")
    else:
        overlap = queue.overlap
    counts = items.aggregate(
        items=Count("id"),
        complete=Count("id", filter=Q(judged__gte=overlap)),
        judged=Sum("judged"),
        wanted=Sum(overlap) if queue.tag_policies else Count("id") * queue.overlap,
    )
    statuses = dict(
        Assignment.objects.filter(item__queue=queue)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    wanted = counts["wanted"] or 0
    judged = counts["judged"] or 0
    return {
        "items": counts["items"] or 0,
        "complete": counts["complete"] or 0,
        "judgments": judged,
        "gold_judgments": Judgment.objects.filter(
            assignment__item__queue=queue, assignment__item__is_gold=True
        ).count(),
        "wanted": wanted,
        "percent": round(100 * min(judged, wanted) / wanted, 1) if wanted else 0.0,
        "leased": statuses.get(Assignment.Status.LEASED, 0),
        "skipped": statuses.get(Assignment.Status.SKIPPED, 0),
        "expired": statuses.get(Assignment.Status.EXPIRED, 0),
        "gold_items": queue.items.filter(is_gold=True).count(),
        "retired": queue.items.filter(retired=True).count(),
    }


def queue_throughput(
    *, queue: Queue, hours: int = 24, facts: JudgmentFacts | None = None
) -> list[dict[str, Any]]:
    """Judgments per hour over the last ``hours`` hours, oldest first, empty hours included
    (counted from ``facts`` when given, else in the database)."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    since = now - timedelta(hours=hours - 1)
    if facts is not None:
        hour = np.floor((facts.created - since.timestamp()) / 3600)
        counts = np.bincount(hour[(hour >= 0) & (hour < hours)].astype(np.int64), minlength=hours)
        return [{"hour": since + timedelta(hours=i), "n": int(counts[i])} for i in range(hours)]
    rows = dict(
        Judgment.objects.filter(assignment__item__queue=queue, created_at__gte=since)
        .annotate(hour=TruncHour("created_at"))
        .values_list("hour")
        .annotate(n=Count("id"))
        .values_list("hour", "n")
    )
    return [
        {"hour": since + timedelta(hours=i), "n": rows.get(since + timedelta(hours=i), 0)}
        for i in range(hours)
    ]


def _medians(index: np.ndarray, values: np.ndarray, n: int) -> list[float | None]:
    """Per group (``index``: each value's group, 0..n-1): the median of its non-nan values,
    rounded to 0.1, or None."""
    known = ~np.isnan(values)
    groups, sorted_values = index[known], values[known]
    order = np.lexsort((sorted_values, groups))
    groups, sorted_values = groups[order], sorted_values[order]
    starts = np.searchsorted(groups, np.arange(n), side="left")
    ends = np.searchsorted(groups, np.arange(n), side="right")
    out: list[float | None] = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        out.append(round(float(np.median(sorted_values[start:end])), 1) if end > start else None)
    return out


def queue_raters(*, queue: Queue, facts: JudgmentFacts | None = None) -> dict[str, Any]:
    """Per rater: judgments, skips, median active time, gold accuracy, pairwise agreement with
    other raters.

    Pairwise agreement with other raters: over items judged by two or more raters, the share of
    rater pairs whose pairwise preferences point the same way (both ties count as agreeing); per
    rater (``pairwise_agreement``, also under its old name ``agreement``), the pairs they are in;
    overall (``overall_agreement``), all pairs. Not the export's majority share.

    Counted on the judgments' arrays (``stats_facts``, numpy); only the answers to gold items are
    read row by row.
    """
    facts = facts or judgment_facts(queue=queue)
    gold_rows = list(
        Judgment.objects.filter(assignment__item__queue=queue, assignment__item__is_gold=True)
        .exclude(assignment__item__gold_answer__isnull=True)
        .values_list(
            "id",
            "assignment__rater_id",
            "assignment__item__comparison_id",
            "assignment__item__gold_answer",
            "assignment__shown_order",
            "preference",
            "ranking",
        )
    )
    gold_rows = [row for row in gold_rows if row[3]]
    orders = comparison_orders([row[2] for row in gold_rows])
    gold_answered: dict[int, int] = defaultdict(int)
    gold_right: dict[int, int] = defaultdict(int)
    for _id, rater_id, comparison_id, gold_answer, shown, preference, ranking in gold_rows:
        gold_answered[rater_id] += 1
        gold_right[rater_id] += answer_matches_gold(
            preference=preference,
            ranking=ranking,
            shown_order=shown,
            gold=gold_answer or {},
            canonical=orders.get(comparison_id, []),
        )
    # Raters in the order of their first judgment (then by judgments, below: a stable sort).
    raters, first, index = np.unique(facts.rater, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    judgments = np.bincount(index, minlength=len(raters))
    medians = _medians(index, facts.active, len(raters))
    # Pairwise agreement: over items with two or more answers (gold items with an answer left
    # out), each rater pair agrees when both directions are the same.
    gold_ids = {row[0] for row in gold_rows}
    keep = ~np.isnan(facts.preference) & ~np.isnan(facts.swapped) & ~np.isin(facts.ids, list(gold_ids))
    sign = np.sign(facts.canonical_preference()[keep]).astype(np.int64) + 1
    _items, unit = np.unique(facts.item[keep], return_inverse=True)
    per_item = np.bincount(unit * 3 + sign, minlength=len(_items) * 3).reshape(-1, 3)
    answers = per_item.sum(axis=1)
    agree = np.bincount(index[keep], weights=per_item[unit, sign] - 1, minlength=len(raters))
    pairs = np.bincount(index[keep], weights=answers[unit] - 1, minlength=len(raters))
    agree_total = int((per_item * (per_item - 1) // 2).sum())
    pairs_total = int((answers * (answers - 1) // 2).sum())
    names = dict(User.objects.filter(pk__in=raters.tolist()).values_list("pk", "username"))
    skips = dict(
        Assignment.objects.filter(item__queue=queue, status=Assignment.Status.SKIPPED)
        .values_list("rater_id")
        .annotate(n=Count("id"))
        .values_list("rater_id", "n")
    )
    rows = []
    for i in order.tolist():
        rater_id = int(raters[i])
        gold, right, agreed, paired = gold_answered[rater_id], gold_right[rater_id], agree[i], int(pairs[i])
        share = round(float(agreed) / paired, 3) if paired else None
        rows.append(
            {
                "rater": names[rater_id],
                "judgments": int(judgments[i]),
                "skips": skips.get(rater_id, 0),
                "median_active_seconds": medians[i],
                "gold_accuracy": round(right / gold, 3) if gold else None,
                "gold_answered": gold,
                "pairwise_agreement": share,
                "pairwise_agreement_pairs": paired,
                # The same figure under its first name, kept for existing API clients.
                "agreement": share,
            }
        )
    rows.sort(key=lambda r: -r["judgments"])
    return {
        "overall_agreement": round(agree_total / pairs_total, 3) if pairs_total else None,
        "agreement_pairs": pairs_total,
        "raters": rows,
    }
