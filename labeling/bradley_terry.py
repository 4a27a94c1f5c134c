"""Bradley-Terry scores from pairwise battles: the fit, the Elo-like scale, bootstrap intervals and
rank ranges. Numpy only: nothing here imports Django, so the arithmetic is tested on its own
(``tests/labeling/test_bradley_terry.py``); ``labeling.selectors.leaderboard`` feeds it counts.

The model: player i beats player j with probability ``p_i / (p_i + p_j)``. The data are two
n x n count matrices, ``wins[i, j]`` (times i beat j) and ``ties[i, j]`` (symmetric). A tie is
half a win for each side, so the fit sees ``W = wins + ties / 2``.

The fit solves the likelihood equations by Newman's iteration (Newman 2023, "Efficient
computation of rankings from pairwise comparisons", JMLR 24): ``p_i <- sum_j W_ij p_j / (p_i + p_j)
/ sum_j W_ji / (p_i + p_j)``. It has the same fixed point as Zermelo's 1929 iteration, Hunter's
MM algorithm (2004), ``p_i <- W_i / sum_j N_ij / (p_i + p_j)``, but gets there far sooner where a
player wins or loses nearly everything: on one such leaderboard MM had not converged after
200,000 steps, this took 1,400 (tens of steps on balanced data). Every player moves at once, by
half of Newman's step in log-strength: the whole step, taken by all at once, overshoots (two
players would swing back and forth forever). It runs in log-strengths, written with logistic
functions so no strength overflows, and stops when no full step is over ``tol``. A stack of
matrices (..., n, n) is fitted at once: the bootstrap rounds.

The plain maximum-likelihood estimate exists only when every split of the players into two
groups has each group winning a game against the other (a player who never lost would go to
infinity). ``prior`` > 0 gives every player that many virtual games, all ties, spread evenly over
the other players (``prior / (n - 1)`` ties with each): every score is then finite, and players
who never met, directly or through others, sit at the same level. Against thousands of real
battles its weight is negligible.

Scores are on an Elo-like scale: ``1000 + 400 * log10(p_i / g)``, ``g`` the geometric mean of
the strengths, so the scores average 1000 and a difference of 400 points means odds of 10 to 1
(``P(i beats j) = 1 / (1 + 10 ** ((s_j - s_i) / 400))``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Elo points per natural-log unit of strength: 400 points are odds of 10 to 1.
ELO_PER_LOG = 400 / math.log(10)
#: The scores' mean.
ELO_MEAN = 1000.0

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def win_matrix(wins: ArrayLike, ties: ArrayLike) -> FloatArray:
    """``wins + ties / 2``: a tie is half a win for each side."""
    return np.asarray(wins, dtype=float) + np.asarray(ties, dtype=float) / 2


def fit(
    win_counts: ArrayLike, *, prior: float = 0.0, tol: float = 1e-8, max_iter: int = 100_000
) -> FloatArray:
    """Log-strengths (natural log, mean 0 over players) that maximise the Bradley-Terry
    likelihood of ``win_counts`` (``[..., i, j]`` = wins of i over j, ties as halves), by Newman's
    iteration; with ``prior`` > 0, plus ``prior`` virtual ties per player, spread evenly over the
    others. Accepts a stack (..., n, n) and fits each matrix.

    Raises ValueError when ``prior`` is 0 and a player has no win or no loss (its MLE is at
    infinity), and ArithmeticError if ``max_iter`` steps do not converge.
    """
    w = np.asarray(win_counts, dtype=float)
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError("win_counts must be square (..., n, n)")
    if prior < 0:
        raise ValueError("prior must be 0 or more")
    n = w.shape[-1]
    if prior > 0 and n > 1:
        w = w + (prior / (2 * (n - 1))) * (1 - np.eye(n))
    lost = np.swapaxes(w, -1, -2)
    if np.any(w.sum(axis=-1) <= 0) or np.any(lost.sum(axis=-1) <= 0):
        raise ValueError("a player has no win or no loss: its maximum-likelihood strength is at infinity")
    log_p = np.zeros(w.shape[:-1])
    for _ in range(max_iter):
        # beats[..., i, j] = P(i beats j) = p_i / (p_i + p_j), as a logistic function (no overflow).
        beats = 0.5 * (1 + np.tanh((log_p[..., :, None] - log_p[..., None, :]) / 2))
        # Newman's step: p_i <- p_i * sum_j W_ij P(j beats i) / sum_j W_ji P(i beats j).
        step = np.log((w * np.swapaxes(beats, -1, -2)).sum(axis=-1)) - np.log((lost * beats).sum(axis=-1))
        # Half of it for everyone at once; the likelihood fixes only ratios: mean log-strength 0.
        log_p = log_p + step / 2
        log_p -= log_p.mean(axis=-1, keepdims=True)
        if not step.size or float(np.max(np.abs(step))) < tol:
            return log_p
    raise ArithmeticError(f"the Bradley-Terry fit did not converge in {max_iter} steps")


def elo(log_strengths: ArrayLike) -> FloatArray:
    """Log-strengths on the Elo-like scale: mean 1000, 400 points = odds of 10 to 1."""
    theta = np.asarray(log_strengths, dtype=float)
    return ELO_MEAN + ELO_PER_LOG * (theta - theta.mean(axis=-1, keepdims=True))


def bootstrap(
    wins: ArrayLike, ties: ArrayLike, *, rounds: int, seed: int = 0, prior: float = 0.0
) -> FloatArray:
    """Elo-scale scores of ``rounds`` refits, each on the battles drawn with replacement.

    Drawing N battles with replacement from N is, on the aggregated counts, one multinomial
    draw over the cells (pair, outcome): i won, tie, j won. Seeded: the same data and seed give
    the same rounds. Returns an array (rounds, n).
    """
    won = np.asarray(wins, dtype=np.int64)
    tied = np.asarray(ties, dtype=np.int64)
    n = won.shape[0]
    upper = np.triu_indices(n, 1)
    cells = np.stack([won[upper], tied[upper], won.T[upper]], axis=-1).reshape(-1)
    total = int(cells.sum())
    if total == 0:
        return np.full((rounds, n), ELO_MEAN)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, cells / total, size=rounds).reshape(rounds, -1, 3)
    stack = np.zeros((rounds, n, n))
    stack[:, upper[0], upper[1]] = draws[..., 0] + draws[..., 1] / 2
    stack[:, upper[1], upper[0]] = draws[..., 2] + draws[..., 1] / 2
    return elo(fit(stack, prior=prior))


@dataclass(frozen=True)
class Ratings:
    """Per player: the score, its bootstrap interval, the rank and the range of ranks."""

    scores: FloatArray
    lower: FloatArray
    upper: FloatArray
    rank: IntArray
    rank_best: IntArray
    rank_worst: IntArray


def ranks(scores: FloatArray, lower: FloatArray, upper: FloatArray) -> tuple[IntArray, IntArray, IntArray]:
    """Rank (1 = best; equal scores share one), and the best and worst rank the intervals allow:
    best = 1 + the players whose whole interval lies above this one's; worst = n - the players
    whose whole interval lies below it."""
    n = len(scores)
    rank = 1 + (scores[None, :] > scores[:, None]).sum(axis=1)
    best = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
    worst = n - (upper[None, :] < lower[:, None]).sum(axis=1)
    return rank.astype(np.int64), best.astype(np.int64), worst.astype(np.int64)


def rate(
    wins: ArrayLike,
    ties: ArrayLike,
    *,
    rounds: int = 100,
    seed: int = 0,
    prior: float = 0.0,
    level: float = 0.95,
) -> Ratings:
    """The fit on all battles, with percentile intervals from ``rounds`` bootstrap refits
    (2.5 and 97.5 percentiles for ``level`` 0.95, as Chatbot Arena reports)."""
    scores = elo(fit(win_matrix(wins, ties), prior=prior))
    samples = bootstrap(wins, ties, rounds=rounds, seed=seed, prior=prior)
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(samples, [tail, 100 - tail], axis=0)
    rank, best, worst = ranks(scores, lower, upper)
    return Ratings(scores=scores, lower=lower, upper=upper, rank=rank, rank_best=best, rank_worst=worst)


def win_rates(wins: ArrayLike, ties: ArrayLike) -> FloatArray:
    """Observed share of row's wins over column (ties as halves); NaN where they never met."""
    w = win_matrix(wins, ties)
    games = w + w.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(games > 0, w / np.where(games > 0, games, 1), np.nan)
