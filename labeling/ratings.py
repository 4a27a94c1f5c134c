"""Bradley-Terry strength estimates from pairwise outcomes (pure Python, no numpy needed).

Used by the adaptive pairing strategy (spend judgments where the estimate is least certain) and
by leaderboards.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable


def bradley_terry(
    outcomes: Iterable[tuple[Hashable, Hashable, float]],
    *,
    players: Iterable[Hashable] = (),
    prior: float = 0.5,
    iterations: int = 200,
    tolerance: float = 1e-9,
) -> dict[Hashable, float]:
    """Fit log-strengths by Hunter's MM algorithm.

    ``outcomes`` are ``(a, b, score)`` with score 1 when a won, 0 when b won, 0.5 for a tie.
    ``prior`` adds that many virtual ties between every compared pair (and each player against a
    virtual average player), which keeps the estimate finite when a player always wins. The
    result is centred: the mean log-strength is 0.
    """
    wins: dict[Hashable, float] = defaultdict(float)
    games: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    names: set[Hashable] = set(players)
    for a, b, score in outcomes:
        names.update((a, b))
        wins[a] += score
        wins[b] += 1.0 - score
        key = (a, b) if repr(a) <= repr(b) else (b, a)
        games[key] += 1.0
    if not names:
        return {}
    anchor = object()
    for name in names:
        wins[name] += prior
        games[(name, anchor)] += 2 * prior
    wins[anchor] = prior * len(names)
    strength: dict[Hashable, float] = {name: 1.0 for name in names}
    strength[anchor] = 1.0
    neighbours: dict[Hashable, list[tuple[Hashable, float]]] = defaultdict(list)
    for (a, b), n in games.items():
        neighbours[a].append((b, n))
        neighbours[b].append((a, n))
    for _ in range(iterations):
        delta = 0.0
        for name in names:
            denom = sum(n / (strength[name] + strength[other]) for other, n in neighbours[name])
            new = wins[name] / denom if denom else strength[name]
            delta = max(delta, abs(math.log(new) - math.log(strength[name])))
            strength[name] = new
        if delta < tolerance:
            break
    logs = {name: math.log(strength[name]) for name in names}
    mean = sum(logs.values()) / len(logs)
    return {name: value - mean for name, value in logs.items()}


def pair_uncertainty_priority(score_gap: float, judgments: int) -> int:
    """Higher for pairs whose scores are close and that have few judgments (adaptive pairing)."""
    return int(1_000_000 / ((1.0 + abs(score_gap) * 4.0) * (1.0 + judgments)))
