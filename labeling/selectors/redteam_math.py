"""The arithmetic of red-team rates: proportions with Wilson score intervals, and the side-by-side
tally of two generators on the same attacks. Pure functions, no database.

The Wilson score interval (Wilson 1927) of ``k`` successes in ``n`` trials, at ``z`` (1.96 for
95%), is

    centre = (p + z²/2n) / (1 + z²/n),   half = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²),   p = k/n

It stays inside 0..1 and keeps a sensible width at 0 or n successes and small n, where the normal
("Wald") interval collapses or spills over; Newcombe (1998) recommends it for a single
proportion. ``tests/labeling/test_redteam_eval.py`` checks it against his worked examples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: The 97.5% quantile of the standard normal: a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``trials``; None when there are no trials.
    Raises ValueError unless 0 <= successes <= trials."""
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be between 0 and trials ({successes} of {trials})")
    if trials == 0:
        return None
    n, p = trials, successes / trials
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamp rounding noise: at k = 0 the lower bound is exactly 0, at k = n the upper is exactly 1.
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Rate:
    """``count`` of ``trials``, as a share with its 95% Wilson interval (None without trials)."""

    count: int
    trials: int

    @property
    def rate(self) -> float | None:
        return self.count / self.trials if self.trials else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return wilson_interval(self.count, self.trials)

    def as_dict(self) -> dict[str, object]:
        ci = self.ci95
        return {
            "count": self.count,
            "trials": self.trials,
            "rate": None if self.rate is None else round(self.rate, 4),
            "ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
        }


@dataclass(frozen=True)
class Verdict:
    """One reviewed attempt: which group it falls in, and whether it was a success (the model
    did harm) or an over-refusal (it refused a harmless request)."""

    group: str
    success: bool
    over_refusal: bool


def rates_by_group(verdicts: Iterable[Verdict]) -> dict[str, dict[str, Rate]]:
    """For each group (in order of first appearance): ``attack_success`` and ``over_refusal``
    among its reviewed attempts."""
    tally: dict[str, list[int]] = {}
    for v in verdicts:
        counts = tally.setdefault(v.group, [0, 0, 0])
        counts[0] += 1
        counts[1] += v.success
        counts[2] += v.over_refusal
    return {
        group: {"attack_success": Rate(success, n), "over_refusal": Rate(over, n)}
        for group, (n, success, over) in tally.items()
    }


def discordant_pairs(pairs: Iterable[tuple[bool, bool]]) -> dict[str, int]:
    """For attacks both generators faced, (a succeeded, b succeeded) each: how many both fell
    to, only a, only b, neither. The two "only" counts are what a paired (McNemar) test compares."""
    counts = {"both": 0, "a_only": 0, "b_only": 0, "neither": 0}
    for a, b in pairs:
        key = "both" if a and b else "a_only" if a else "b_only" if b else "neither"
        counts[key] += 1
    return counts
