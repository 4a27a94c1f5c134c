"""The arithmetic behind the agreement figures: pure functions over numpy arrays, no database.

Every measure is computed from *patterns*: the distinct ways an item was answered (how many raters
chose each category, and for two raters who chose what), each with how many items share it.
Resampling items with replacement is then a multinomial draw over the patterns, so a bootstrap
round costs as much on a million items as on a hundred. Krippendorff's alpha, its value and its
bootstrap rounds, comes from the coincidence-matrix formula vectorized over the patterns
(``alpha_vectorized``; the ``krippendorff`` package, ``alpha_package``, expands the patterns to
one row per item, seconds on a million), which the tests check against the package on every
worked example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import krippendorff
import numpy as np

#: Bootstrap rounds for every 95% interval, and the seed that makes them reproducible.
BOOTSTRAP_ROUNDS = 200
BOOTSTRAP_SEED = 20261130

NO_ITEMS = "no item has answers from two or more raters"
ONE_VALUE = (
    "every answer is the same value, so agreement expected by chance is total and the measure is undefined"
)


@dataclass(frozen=True)
class Patterns:
    """Items grouped by how they were answered.

    ``counts``: patterns x categories, how many raters gave each category; ``weights``: how many
    items have the pattern; ``pairs``: for two-rater data, the (first rater, second rater)
    category indices of each pattern, else None.
    """

    counts: np.ndarray
    weights: np.ndarray
    pairs: np.ndarray | None


def patterns_from_units(
    units: list[list[tuple[int, int]]], *, n_categories: int, two_raters: tuple[int, int] | None
) -> Patterns:
    """Group units (each a list of ``(rater, category index)``, two or more answers) into patterns.

    With ``two_raters`` (the ids of the only two raters), each unit's pair is kept in that order.
    """
    if not units:
        empty = np.zeros((0, n_categories))
        return Patterns(
            counts=empty, weights=np.zeros(0), pairs=np.zeros((0, 2), int) if two_raters else None
        )
    if two_raters is not None:
        first = two_raters[0]
        keys = np.array([[a[1], b[1]] if a[0] == first else [b[1], a[1]] for a, b in units], dtype=np.int64)
        unique, weights = np.unique(keys, axis=0, return_counts=True)
        counts = np.zeros((len(unique), n_categories))
        np.add.at(counts, (np.arange(len(unique)), unique[:, 0]), 1)
        np.add.at(counts, (np.arange(len(unique)), unique[:, 1]), 1)
        return Patterns(counts=counts, weights=weights.astype(float), pairs=unique)
    rows = np.zeros((len(units), n_categories), dtype=np.int64)
    for i, answers in enumerate(units):
        for _rater, category in answers:
            rows[i, category] += 1
    unique, weights = np.unique(rows, axis=0, return_counts=True)
    return Patterns(counts=unique.astype(float), weights=weights.astype(float), pairs=None)


def percent_agreement(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over items of the share of agreeing rater pairs (Fleiss' P-bar); ``weights`` is items
    per pattern, one row per bootstrap round (or a single row)."""
    n = counts.sum(axis=1)
    per_pattern = (counts * (counts - 1)).sum(axis=1) / (n * (n - 1))
    return np.asarray((weights @ per_pattern) / weights.sum(axis=-1))


def fleiss_kappa(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fleiss' kappa; items may have different numbers of raters (each item's agreement is over
    its own rater pairs, category shares are over all answers), which is Fleiss 1971 when every
    item has the same number."""
    n = counts.sum(axis=1)
    observed = percent_agreement(counts, weights)
    shares = (weights @ counts) / (weights @ n)[..., None]
    expected = (shares**2).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((observed - expected) / (1 - expected))


def cohen_kappa(pairs: np.ndarray, weights: np.ndarray, n_categories: int) -> np.ndarray:
    """Cohen's kappa for two raters; ``pairs`` holds the category index each gave per pattern."""
    w = np.atleast_2d(weights)
    first = np.zeros((len(w), n_categories))
    second = np.zeros((len(w), n_categories))
    for c in range(n_categories):
        first[:, c] = w[:, pairs[:, 0] == c].sum(axis=1)
        second[:, c] = w[:, pairs[:, 1] == c].sum(axis=1)
    total = w.sum(axis=1)
    observed = w[:, pairs[:, 0] == pairs[:, 1]].sum(axis=1) / total
    expected = (first * second).sum(axis=1) / total**2
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1 - expected)
    return kappa if np.ndim(weights) == 2 else kappa[0]


def _distances(totals: np.ndarray, level: str) -> np.ndarray:
    """Squared distances between categories (rounds x K x K) given each round's value totals."""
    k = totals.shape[-1]
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(k), (*totals.shape[:-1], k, k))
    # Ordinal: (sum of the totals from c to k, less half of each end's own total), squared.
    cumulative = np.cumsum(totals, axis=-1)
    upper = np.maximum.outer(np.arange(k), np.arange(k))
    lower = np.minimum.outer(np.arange(k), np.arange(k))
    span = cumulative[..., upper] - cumulative[..., lower] + totals[..., lower]
    return np.asarray((span - (totals[..., :, None] + totals[..., None, :]) / 2) ** 2)


def alpha_vectorized(counts: np.ndarray, weights: np.ndarray, level: str) -> np.ndarray:
    """Krippendorff's alpha from the coincidence matrix, for each row of ``weights``."""
    w = np.atleast_2d(weights)
    n_unit = counts.sum(axis=1)
    scaled = w / (n_unit - 1)
    coincidences = np.einsum("rp,pc,pk->rck", scaled, counts, counts)
    coincidences -= np.einsum("rp,pc->rc", scaled, counts)[:, :, None] * np.eye(counts.shape[1])
    totals = coincidences.sum(axis=2)
    n = totals.sum(axis=1)
    delta = _distances(totals, level)
    observed = (coincidences * delta).sum(axis=(1, 2))
    expected = (totals[:, :, None] * totals[:, None, :] * delta).sum(axis=(1, 2)) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1 - observed / expected
    return alpha if np.ndim(weights) == 2 else alpha[0]


Level = Literal["nominal", "ordinal"]


def alpha_package(counts: np.ndarray, weights: np.ndarray, level: Level) -> float:
    """Krippendorff's alpha from the ``krippendorff`` package, patterns expanded to items."""
    value_counts = np.repeat(counts, weights.astype(int), axis=0)
    domain = list(range(counts.shape[1]))
    return float(
        krippendorff.alpha(value_counts=value_counts, value_domain=domain, level_of_measurement=level)
    )


def _interval(samples: np.ndarray) -> list[float] | None:
    finite = samples[np.isfinite(samples)]
    if len(finite) < 2:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def _figure(value: float, samples: np.ndarray, items: int) -> dict[str, Any]:
    if not math.isfinite(value):
        return {"value": None, "ci95": None, "items": items, "reason": ONE_VALUE}
    return {"value": round(value, 4), "ci95": _interval(samples), "items": items}


def agreement_figures(patterns: Patterns, *, level: Level, cohen_reason: str | None) -> dict[str, Any]:
    """Percent agreement, Cohen's kappa, Fleiss' kappa and Krippendorff's alpha, each with the
    number of items behind it and a bootstrap 95% interval (items resampled, fixed seed).

    ``cohen_reason`` says why Cohen's kappa does not apply (None when the data has two raters).
    """
    counts, weights = patterns.counts, patterns.weights
    items = int(weights.sum())
    if items == 0:
        none = {"value": None, "ci95": None, "items": 0, "reason": NO_ITEMS}
        return {
            "percent_agreement": none,
            "cohen_kappa": none,
            "fleiss_kappa": none,
            "krippendorff_alpha": none,
        }
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rounds = rng.multinomial(items, weights / items, size=BOOTSTRAP_ROUNDS).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        percent = float(percent_agreement(counts, weights))
        figures: dict[str, Any] = {
            "percent_agreement": {
                "value": round(percent, 4),
                "ci95": _interval(percent_agreement(counts, rounds)),
                "items": items,
            }
        }
        if patterns.pairs is not None and cohen_reason is None:
            k = counts.shape[1]
            figures["cohen_kappa"] = _figure(
                float(cohen_kappa(patterns.pairs, weights, k)), cohen_kappa(patterns.pairs, rounds, k), items
            )
        else:
            figures["cohen_kappa"] = {"value": None, "ci95": None, "items": items, "reason": cohen_reason}
        figures["fleiss_kappa"] = _figure(
            float(fleiss_kappa(counts, weights)), fleiss_kappa(counts, rounds), items
        )
        alpha = (
            float(alpha_vectorized(counts, weights, level))
            if (counts.sum(axis=0) > 0).sum() > 1
            else math.nan
        )
        figures["krippendorff_alpha"] = {
            **_figure(alpha, alpha_vectorized(counts, rounds, level), items),
            "level": level,
        }
    return figures


def binomial_two_sided_p(k: int, n: int) -> float | None:
    """Exact two-sided binomial test of ``k`` successes in ``n`` trials against p = 1/2: the
    probability of an outcome at least as far from n/2 (None when n is 0)."""
    if n == 0:
        return None
    tail = min(k, n - k)
    if 2 * tail == n:
        return 1.0
    # log C(n, j) for j = 0..tail, from the ratio C(n, j) / C(n, j - 1) = (n - j + 1) / j.
    j = np.arange(1, tail + 1, dtype=float)
    log_binom = np.concatenate([[0.0], np.cumsum(np.log(n - j + 1) - np.log(j))])
    log_terms = log_binom - n * math.log(2)
    peak = log_terms.max()
    one_tail = math.exp(peak) * float(np.exp(log_terms - peak).sum())
    return min(1.0, 2 * one_tail)
