"""The agreement arithmetic against published worked examples and independent computations."""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import combinations, permutations

import krippendorff
import numpy as np
import pytest

from labeling.selectors.agreement import measure_agreement
from labeling.selectors.agreement_math import (
    NO_ITEMS,
    ONE_VALUE,
    Patterns,
    alpha_package,
    alpha_vectorized,
    binomial_two_sided_p,
    patterns_from_units,
)

# Fleiss (1971) as reproduced in Wikipedia's "Fleiss' kappa" worked example: 10 subjects, 14
# raters each, 5 categories; P-bar = 0.378, P_e = 0.213, kappa = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers,
# 12 units, values 1..5, None = missing. Published: nominal alpha 0.743, ordinal alpha 0.815.
KRIPPENDORFF_DATA = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _fleiss_triples():
    triples = []
    for unit, row in enumerate(FLEISS_TABLE):
        raters = iter(range(14))
        for category, count in enumerate(row):
            triples += [(unit, next(raters), category) for _ in range(count)]
    return triples


def _krippendorff_triples():
    return [
        (unit, rater, value - 1)
        for rater, row in enumerate(KRIPPENDORFF_DATA)
        for unit, value in enumerate(row)
        if value is not None
    ]


def _fleiss_by_formula(table):
    """Fleiss (1971), equations as printed: P_i, P-bar, p_j, P_e-bar."""
    n = sum(table[0])
    big_n = len(table)
    p_i = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in table]
    p_bar = sum(p_i) / big_n
    p_j = [sum(row[j] for row in table) / (big_n * n) for j in range(len(table[0]))]
    p_e = sum(p * p for p in p_j)
    return p_bar, (p_bar - p_e) / (1 - p_e)


def _alpha_by_pairs(units, level):
    """Krippendorff's alpha by its definition over pairable values, in plain Python: every
    ordered pair of values within a unit weighs 1 / (m_u - 1)."""
    values = [v for answers in units for v in answers]
    totals = Counter(values)
    categories = sorted(totals)

    def delta(c, k):
        if level == "nominal":
            return float(c != k)
        lo, hi = min(c, k), max(c, k)
        span = sum(totals[g] for g in categories if lo <= g <= hi)
        return (span - (totals[c] + totals[k]) / 2) ** 2

    observed = sum(delta(a, b) / (len(answers) - 1) for answers in units for a, b in permutations(answers, 2))
    n = len(values)
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in categories for k in categories) / (n - 1)
    return 1 - observed / expected


def test_fleiss_worked_example():
    figures = measure_agreement(_fleiss_triples(), n_categories=5, level="nominal")
    assert figures["fleiss_kappa"]["value"] == pytest.approx(0.210, abs=5e-4)
    assert figures["percent_agreement"]["value"] == pytest.approx(0.378, abs=5e-4)
    p_bar, kappa = _fleiss_by_formula(FLEISS_TABLE)
    assert figures["fleiss_kappa"]["value"] == pytest.approx(kappa, abs=1e-4)
    assert figures["percent_agreement"]["value"] == pytest.approx(p_bar, abs=1e-4)
    assert figures["fleiss_kappa"]["items"] == 10
    assert "14 raters" in figures["cohen_kappa"]["reason"]


def test_cohen_worked_example():
    # Wikipedia, "Cohen's kappa", first example: 50 grant proposals read by readers A and B;
    # both yes 20, A yes / B no 5, A no / B yes 10, both no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    answers = [(1, 1)] * 20 + [(1, 0)] * 5 + [(0, 1)] * 10 + [(0, 0)] * 15
    triples = [(i, "A", a) for i, (a, _) in enumerate(answers)] + [
        (i, "B", b) for i, (_, b) in enumerate(answers)
    ]
    figures = measure_agreement(triples, n_categories=2, level="nominal")
    assert figures["cohen_kappa"]["value"] == pytest.approx(0.4, abs=1e-4)
    assert figures["percent_agreement"]["value"] == pytest.approx(0.7, abs=1e-4)
    assert figures["cohen_kappa"]["items"] == 50
    # Independently: p_o and p_e from the marginals (A yes 25/50, B yes 30/50).
    p_o = 35 / 50
    p_e = (25 / 50) * (30 / 50) + (25 / 50) * (20 / 50)
    assert figures["cohen_kappa"]["value"] == pytest.approx((p_o - p_e) / (1 - p_e), abs=1e-4)
    # Krippendorff's alpha for two raters, nominal, by its definition.
    units = [list(pair) for pair in answers]
    assert figures["krippendorff_alpha"]["value"] == pytest.approx(
        _alpha_by_pairs(units, "nominal"), abs=1e-4
    )


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815)])
def test_krippendorff_worked_example(level, published):
    figures = measure_agreement(_krippendorff_triples(), n_categories=5, level=level)
    alpha = figures["krippendorff_alpha"]
    assert alpha["value"] == pytest.approx(published, abs=5e-4)
    assert alpha["items"] == 11  # unit 12 has one value: nothing to agree with
    assert alpha["level"] == level
    units = [
        [row[u] for row in KRIPPENDORFF_DATA if row[u] is not None]
        for u in range(12)
        if sum(row[u] is not None for row in KRIPPENDORFF_DATA) >= 2
    ]
    assert alpha["value"] == pytest.approx(_alpha_by_pairs(units, level), abs=1e-4)
    reliability = np.array([[np.nan if v is None else v for v in row] for row in KRIPPENDORFF_DATA])
    assert alpha["value"] == pytest.approx(
        krippendorff.alpha(reliability_data=reliability, level_of_measurement=level), abs=1e-4
    )


@pytest.mark.parametrize("level", ["nominal", "ordinal"])
def test_vectorized_alpha_matches_the_package_on_resamples(level):
    rng = np.random.default_rng(7)
    counts = np.zeros((40, 7))
    for row in counts:
        for _ in range(rng.integers(2, 5)):
            row[rng.integers(0, 7)] += 1
    for weights in [np.ones(40), rng.multinomial(40, np.ones(40) / 40).astype(float)]:
        kept = weights > 0
        assert alpha_vectorized(counts[kept], weights[kept], level) == pytest.approx(
            alpha_package(counts[kept], weights[kept], level), abs=1e-9
        )


def test_bootstrap_is_reproducible_and_brackets_the_value():
    first = measure_agreement(_krippendorff_triples(), n_categories=5, level="ordinal")
    again = measure_agreement(_krippendorff_triples(), n_categories=5, level="ordinal")
    assert first == again
    for name in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
        low, high = first[name]["ci95"]
        assert low <= first[name]["value"] <= high


def test_no_items_and_one_value_say_why():
    lonely = measure_agreement([(1, 1, 0), (2, 2, 1)], n_categories=2, level="nominal")
    assert all(lonely[name]["value"] is None and lonely[name]["reason"] == NO_ITEMS for name in lonely)
    same = measure_agreement([(u, r, 1) for u in range(5) for r in (1, 2)], n_categories=2, level="nominal")
    assert same["percent_agreement"]["value"] == 1.0
    for name in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha"):
        assert same[name]["value"] is None and same[name]["reason"] == ONE_VALUE


def test_patterns_group_identical_items():
    units = [[(1, 0), (2, 0)], [(2, 0), (1, 0)], [(1, 0), (2, 1)]]
    patterns = patterns_from_units(units, n_categories=2, two_raters=(1, 2))
    assert isinstance(patterns, Patterns)
    assert patterns.weights.tolist() == [2.0, 1.0]
    assert patterns.pairs.tolist() == [[0, 0], [0, 1]]


def _binomial_direct(k, n):
    """The two-sided exact test by summing every outcome no more likely than the one seen."""
    pmf = [math.comb(n, j) / 2**n for j in range(n + 1)]
    return min(1.0, sum(p for p in pmf if p <= pmf[k] * (1 + 1e-12)))


def test_binomial_test():
    # Textbook: 2 heads in 10 fair tosses, two-sided p = 2 * 56/1024 = 0.109375.
    assert binomial_two_sided_p(2, 10) == pytest.approx(0.109375, rel=1e-12)
    assert binomial_two_sided_p(0, 20) == pytest.approx(2 / 2**20, rel=1e-12)
    assert binomial_two_sided_p(5, 10) == 1.0
    assert binomial_two_sided_p(0, 0) is None
    rng = random.Random(3)
    for n in [1, 7, 30, 101, 400]:
        for k in {0, n, rng.randint(0, n), rng.randint(0, n)}:
            assert binomial_two_sided_p(k, n) == pytest.approx(_binomial_direct(k, n), rel=1e-9)
    # Large n stays exact where the terms underflow: against the normal approximation
    # (continuity corrected), which is close at this size.
    n, k = 1_001_000, 500_000
    z = (abs(k - n / 2) - 0.5) / math.sqrt(n / 4)
    assert binomial_two_sided_p(k, n) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-3)


def test_fleiss_with_unequal_raters_per_item_reduces_to_pairs():
    # Two items: one with 3 raters (2 agree), one with 2 raters (agree). P_i = 1/3 and 1.
    triples = [(1, 1, 0), (1, 2, 0), (1, 3, 1), (2, 1, 1), (2, 2, 1)]
    figures = measure_agreement(triples, n_categories=2, level="nominal")
    assert figures["percent_agreement"]["value"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-4)
    shares = [2 / 5, 3 / 5]
    p_e = sum(s * s for s in shares)
    expected = ((1 / 3 + 1) / 2 - p_e) / (1 - p_e)
    assert figures["fleiss_kappa"]["value"] == pytest.approx(expected, abs=1e-4)
    pairs = sum(1 for answers in ([0, 0, 1], [1, 1]) for _ in combinations(answers, 2))
    assert pairs == 4
