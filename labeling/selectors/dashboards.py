"""Reads behind the admin queue dashboards: progress, throughput, per-rater quality, agreement."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from itertools import combinations
from statistics import median
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from labeling.models import Assignment, Judgment, Queue
from labeling.selectors.quality import comparison_orders, judgment_matches_gold, preference_in_positions


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


def queue_progress(*, queue: Queue) -> dict[str, Any]:
    """How far the queue is. ``judgments`` counts those on its real items still in play (not
    gold, not retired), the ones ``wanted`` (items x overlap) asks for; answers to gold items are
    ``gold_judgments``, so a queue full of gold answers never looks done."""
    counts = queue.items.filter(is_gold=False, retired=False).aggregate(
        items=Count("id"),
        complete=Count("id", filter=Q(judged__gte=queue.overlap)),
        judged=Sum("judged"),
    )
    statuses = dict(
        Assignment.objects.filter(item__queue=queue)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    wanted = (counts["items"] or 0) * queue.overlap
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


def queue_throughput(*, queue: Queue, hours: int = 24) -> list[dict[str, Any]]:
    """Judgments per hour over the last ``hours`` hours, oldest first, empty hours included."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    since = now - timedelta(hours=hours - 1)
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


def queue_raters(*, queue: Queue) -> dict[str, Any]:
    """Per rater: judgments, skips, median active time, gold accuracy, agreement with the others.

    Agreement: over items judged by two or more raters, the share of rater pairs whose pairwise
    preferences point the same way (both ties count as agreeing); per rater, the pairs they are in.
    """
    judgments = list(
        Judgment.objects.filter(assignment__item__queue=queue)
        .select_related("assignment__item", "assignment__rater")
        .order_by("id")
    )
    orders = comparison_orders([j.assignment.item.comparison_id for j in judgments])
    by_item: dict[int, list[tuple[int, int]]] = defaultdict(list)
    stats: dict[int, dict[str, Any]] = {}
    for j in judgments:
        rater = j.assignment.rater
        s = stats.setdefault(
            rater.pk,
            {
                "rater": rater.username,
                "judgments": 0,
                "active": [],
                "gold": 0,
                "gold_right": 0,
                "agree": 0,
                "pairs": 0,
            },
        )
        s["judgments"] += 1
        if j.active_seconds is not None:
            s["active"].append(j.active_seconds)
        item = j.assignment.item
        canonical = orders.get(item.comparison_id, [])
        if item.is_gold and item.gold_answer:
            s["gold"] += 1
            s["gold_right"] += judgment_matches_gold(judgment=j, gold=item.gold_answer, canonical=canonical)
        elif j.preference is not None and canonical:
            p = preference_in_positions(
                preference=j.preference, shown_order=j.assignment.shown_order, canonical=canonical
            )
            by_item[item.pk].append((rater.pk, _sign(p)))
    agree_total = pairs_total = 0
    for answers in by_item.values():
        for (ra, a), (rb, b) in combinations(answers, 2):
            same = int(a == b)
            agree_total += same
            pairs_total += 1
            for r in (ra, rb):
                stats[r]["agree"] += same
                stats[r]["pairs"] += 1
    skips = dict(
        Assignment.objects.filter(item__queue=queue, status=Assignment.Status.SKIPPED)
        .values_list("rater_id")
        .annotate(n=Count("id"))
        .values_list("rater_id", "n")
    )
    rows = []
    for rater_id, s in stats.items():
        rows.append(
            {
                "rater": s["rater"],
                "judgments": s["judgments"],
                "skips": skips.get(rater_id, 0),
                "median_active_seconds": round(median(s["active"]), 1) if s["active"] else None,
                "gold_accuracy": round(s["gold_right"] / s["gold"], 3) if s["gold"] else None,
                "gold_answered": s["gold"],
                "agreement": round(s["agree"] / s["pairs"], 3) if s["pairs"] else None,
            }
        )
    rows.sort(key=lambda r: -r["judgments"])
    return {
        "overall_agreement": round(agree_total / pairs_total, 3) if pairs_total else None,
        "agreement_pairs": pairs_total,
        "raters": rows,
    }
