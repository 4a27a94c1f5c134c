"""Position bias, the queue's rates, and how far each rater can be trusted, with the evidence.

"Left" is the response shown first (label A): a pairwise preference below 0 is a left win, above 0
a right win, 0 a tie. Counts are aggregated in the database (GROUP BY rater); only the active
seconds are loaded, as one float per judgment into a numpy array, for the median.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from django.db.models import Count, Q, TextField
from django.db.models.functions import Cast

from labeling.models import Assignment, Judgment, Queue, User
from labeling.selectors.agreement_math import binomial_two_sided_p
from labeling.selectors.stats_facts import JudgmentFacts, queryset_array

#: Implausibly fast: a median active time under this many seconds, over at least
#: ``FAST_MIN_JUDGMENTS`` judgments. Reading two responses takes longer.
FAST_MEDIAN_SECONDS = 4.0
FAST_MIN_JUDGMENTS = 10
#: Always the same side: one side wins more than this share of the rater's decided pairs (ties
#: left out), over at least ``SAME_SIDE_MIN_DECIDED`` of them.
SAME_SIDE_SHARE = 0.9
SAME_SIDE_MIN_DECIDED = 20
#: Agreement far below the pool: the rater's pairwise agreement with other raters is more than
#: ``LOW_AGREEMENT_GAP`` below the median of all raters, or more than ``LOW_AGREEMENT_SDS``
#: standard deviations (of all raters' agreement) below it; judged only for raters with at least
#: ``LOW_AGREEMENT_MIN_PAIRS`` rater pairs, in a pool of at least ``LOW_AGREEMENT_MIN_POOL`` raters.
LOW_AGREEMENT_GAP = 0.2
LOW_AGREEMENT_SDS = 2.0
LOW_AGREEMENT_MIN_PAIRS = 10
LOW_AGREEMENT_MIN_POOL = 3

BOTH_BAD_JSON = '"both_bad"'  # the flag as it appears in the stored JSON list


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _sides(left: int, right: int, ties: int, both_bad: int) -> dict[str, Any]:
    decided = left + right
    p_value = binomial_two_sided_p(left, decided)
    return {
        "pair_judgments": decided + ties,
        "left_wins": left,
        "right_wins": right,
        "ties": ties,
        "both_bad": both_bad,
        "left_share": _rate(left, decided),
        "p_value": None if p_value is None else float(f"{p_value:.4g}"),
        "tie_rate": _rate(ties, decided + ties),
        "both_bad_rate": _rate(both_bad, decided + ties),
    }


def _side_counts_from(facts: JudgmentFacts) -> dict[int, dict[str, Any]]:
    """``_side_counts`` from the judgments' arrays (usernames read once)."""
    has = ~np.isnan(facts.preference)
    raters, index = np.unique(facts.rater[has], return_inverse=True)
    preference, both_bad = facts.preference[has], facts.both_bad[has]
    size = len(raters)
    n = np.bincount(index, minlength=size)
    left = np.bincount(index, weights=preference < 0, minlength=size)
    right = np.bincount(index, weights=preference > 0, minlength=size)
    bad = np.bincount(index, weights=both_bad, minlength=size)
    names = dict(User.objects.filter(pk__in=raters.tolist()).values_list("pk", "username"))
    rows: dict[int, dict[str, Any]] = {
        int(r): {
            "assignment__rater_id": int(r),
            "assignment__rater__username": names[int(r)],
            "n": int(n[i]),
            "left": int(left[i]),
            "right": int(right[i]),
            "both_bad": int(bad[i]),
        }
        for i, r in enumerate(raters.tolist())
    }
    return dict(sorted(rows.items(), key=lambda kv: str(kv[1]["assignment__rater__username"])))


def _side_counts(queue: Queue) -> dict[int, dict[str, Any]]:
    rows = (
        Judgment.objects.filter(assignment__item__queue=queue, preference__isnull=False)
        .alias(flags_text=Cast("flags", TextField()))
        .values("assignment__rater_id", "assignment__rater__username")
        .annotate(
            n=Count("id"),
            left=Count("id", filter=Q(preference__lt=0)),
            right=Count("id", filter=Q(preference__gt=0)),
            both_bad=Count("id", filter=Q(flags_text__contains=BOTH_BAD_JSON)),
        )
        .order_by("assignment__rater__username")
    )
    return {row["assignment__rater_id"]: dict(row) for row in rows}


def _position_bias(counts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Left and right wins over the queue's pairwise judgments and per rater, with the exact
    two-sided binomial test of "left and right win equally often" (ties left out)."""
    raters = []
    for row in counts.values():
        ties = row["n"] - row["left"] - row["right"]
        raters.append(
            {
                "rater": row["assignment__rater__username"],
                **_sides(row["left"], row["right"], ties, row["both_bad"]),
            }
        )
    left = sum(r["left"] for r in counts.values())
    right = sum(r["right"] for r in counts.values())
    total = sum(r["n"] for r in counts.values())
    both_bad = sum(r["both_bad"] for r in counts.values())
    return {**_sides(left, right, total - left - right, both_bad), "raters": raters}


def _rates(
    queue: Queue, counts: dict[int, dict[str, Any]], facts: JudgmentFacts | None = None
) -> dict[str, Any]:
    """Tie rate and both-bad rate (of pairwise judgments), skip rate (skips among judged and
    skipped assignments), median active time (of judgments that recorded it)."""
    pairs = sum(r["n"] for r in counts.values())
    ties = sum(r["n"] - r["left"] - r["right"] for r in counts.values())
    both_bad = sum(r["both_bad"] for r in counts.values())
    skips = Assignment.objects.filter(item__queue=queue, status=Assignment.Status.SKIPPED).count()
    if facts is not None:
        judgments = len(facts.ids)
        active = facts.active[~np.isnan(facts.active)]
    else:
        judgments = Judgment.objects.filter(assignment__item__queue=queue).count()
        active = queryset_array(
            Judgment.objects.filter(assignment__item__queue=queue, active_seconds__isnull=False).order_by(),
            ["active_seconds"],
        )[:, 0]
    return {
        "judgments": judgments,
        "pair_judgments": pairs,
        "tie_rate": _rate(ties, pairs),
        "both_bad_rate": _rate(both_bad, pairs),
        "skips": skips,
        "skip_rate": _rate(skips, judgments + skips),
        "median_active_seconds": round(float(np.median(active)), 1) if len(active) else None,
    }


def _pool(values: list[float]) -> tuple[int, float, float]:
    """The raters' agreement pool: its size, median and population standard deviation."""
    if not values:
        return 0, 0.0, 0.0
    return len(values), statistics.median(values), statistics.pstdev(values)


def _flags(row: dict[str, Any], side: dict[str, Any], pool: tuple[int, float, float]) -> list[dict[str, Any]]:
    flags: list[dict[str, Any]] = []
    median_active = row["median_active_seconds"]
    if (
        median_active is not None
        and row["judgments"] >= FAST_MIN_JUDGMENTS
        and median_active < FAST_MEDIAN_SECONDS
    ):
        flags.append(
            {
                "flag": "implausibly_fast",
                "evidence": {
                    "median_active_seconds": median_active,
                    "threshold_seconds": FAST_MEDIAN_SECONDS,
                    "judgments": row["judgments"],
                },
            }
        )
    decided = side["left_wins"] + side["right_wins"]
    if decided >= SAME_SIDE_MIN_DECIDED:
        share = max(side["left_wins"], side["right_wins"]) / decided
        if share > SAME_SIDE_SHARE:
            flags.append(
                {
                    "flag": "same_side",
                    "evidence": {
                        "side": "left" if side["left_wins"] > side["right_wins"] else "right",
                        "share": round(share, 4),
                        "decided": decided,
                        "threshold_share": SAME_SIDE_SHARE,
                        "p_value": side["p_value"],
                    },
                }
            )
    mine = row["pairwise_agreement"]
    if (
        mine is not None
        and row["pairwise_agreement_pairs"] >= LOW_AGREEMENT_MIN_PAIRS
        and pool[0] >= LOW_AGREEMENT_MIN_POOL
    ):
        _size, middle, spread = pool
        gap = middle - mine
        if gap > LOW_AGREEMENT_GAP or (spread > 0 and gap > LOW_AGREEMENT_SDS * spread):
            flags.append(
                {
                    "flag": "low_agreement",
                    "evidence": {
                        "pairwise_agreement": mine,
                        "pool_median": round(middle, 4),
                        "pool_sd": round(spread, 4),
                        "gap": round(gap, 4),
                        "pairs": row["pairwise_agreement_pairs"],
                        "threshold_gap": LOW_AGREEMENT_GAP,
                        "threshold_sds": LOW_AGREEMENT_SDS,
                    },
                }
            )
    return flags


def queue_trust(
    *, queue: Queue, raters: list[dict[str, Any]], facts: JudgmentFacts | None = None
) -> dict[str, Any]:
    """``position_bias`` (queue and per rater), ``rates``, and ``raters``: the per-rater rows of
    ``dashboards.queue_raters`` with skip rate, side bias and anomaly flags (each with its
    evidence) added."""
    counts = _side_counts(queue) if facts is None else _side_counts_from(facts)
    position_bias = _position_bias(counts)
    bias = {r["rater"]: r for r in position_bias["raters"]}
    pool = _pool([r["pairwise_agreement"] for r in raters if r["pairwise_agreement"] is not None])
    out = []
    for row in raters:
        side = bias.get(row["rater"]) or _sides(0, 0, 0, 0) | {"rater": row["rater"]}
        side_bias = {k: v for k, v in side.items() if k != "rater"}
        out.append(
            {
                **row,
                "skip_rate": _rate(row["skips"], row["judgments"] + row["skips"]),
                "side_bias": side_bias,
                "flags": _flags(row, side_bias, pool),
            }
        )
    return {"position_bias": position_bias, "rates": _rates(queue, counts, facts), "raters": out}
