"""The Bradley-Terry arithmetic (labeling/bradley_terry.py) on its own: hand-computed answers, an
independent fit written out here (Newton's method on the log-likelihood), strengths recovered from
simulated battles, ties as half wins, the bootstrap and the rank ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labeling import bradley_terry as bt

DOUBLING = 400 * math.log10(2)  # Elo points for odds of 2 to 1: 120.41


def newton_fit(wins: np.ndarray) -> np.ndarray:
    """The maximum-likelihood log-strengths by Newton's method on the Bradley-Terry
    log-likelihood sum_ij W_ij log(sigmoid(t_i - t_j)), with t_0 fixed at 0; centred."""
    n = len(wins)
    theta = np.zeros(n)
    games = wins + wins.T
    for _ in range(100):
        diff = theta[:, None] - theta[None, :]
        prob = 1 / (1 + np.exp(-diff))  # P(i beats j)
        gradient = wins.sum(axis=1) - (games * prob).sum(axis=1)
        weight = games * prob * (1 - prob)
        hessian = weight - np.diag(weight.sum(axis=1))
        step = np.linalg.solve(hessian[1:, 1:], -gradient[1:])
        theta[1:] += step
        if np.max(np.abs(step)) < 1e-13:
            break
    return theta - theta.mean()


def test_three_players_known_mle():
    # Counts equal to their expectations under strengths 4 : 2 : 1 (6 games A-B, 5 A-C, 3 B-C)
    # satisfy the likelihood equations exactly (A: 4 + 4 wins = 6*4/6 + 5*4/5), so the MLE is
    # 4 : 2 : 1, one doubling (120.41 points) apart, around a mean of 1000.
    wins = np.array([[0, 4, 4], [2, 0, 2], [1, 1, 0]])
    scores = bt.elo(bt.fit(wins))
    assert scores == pytest.approx([1000 + DOUBLING, 1000, 1000 - DOUBLING], abs=1e-4)
    assert scores.mean() == pytest.approx(1000)


def test_two_players_ties_count_as_half_wins():
    # A beat B 3 times, B beat A once, two ties: A has 3 + 1 = 4 "wins" to B's 1 + 1 = 2.
    wins = np.array([[0, 3], [1, 0]])
    ties = np.array([[0, 2], [2, 0]])
    assert bt.win_matrix(wins, ties).tolist() == [[0, 4], [2, 0]]
    scores = bt.elo(bt.fit(bt.win_matrix(wins, ties)))
    assert scores[0] - scores[1] == pytest.approx(DOUBLING, abs=1e-4)
    # Only ties: equal.
    assert bt.elo(bt.fit(bt.win_matrix(np.zeros((2, 2)), ties))) == pytest.approx([1000, 1000])


def test_fit_matches_an_independent_newton_fit():
    rng = np.random.default_rng(7)
    wins = rng.integers(0, 40, size=(6, 6)).astype(float)
    np.fill_diagonal(wins, 0)
    wins[0, 5] = wins[5, 0] = 0  # two players who never met directly
    assert bt.fit(wins) == pytest.approx(newton_fit(wins), abs=1e-7)


def test_prior_is_virtual_ties_spread_over_the_others():
    # prior = 1: each of 3 players gets one virtual game, a tie, half with each other player;
    # the same as adding 1/4 of a win to every off-diagonal cell.
    wins = np.array([[0, 5, 3], [0, 0, 2], [1, 0, 0]], dtype=float)
    augmented = wins + 0.25 * (1 - np.eye(3))
    assert bt.fit(wins, prior=1.0) == pytest.approx(newton_fit(augmented), abs=1e-7)


def test_lopsided_battles_converge_to_the_same_answer():
    # Rankings of four neighbours (players i..i+3), always the same: the last best, the middle
    # two tied, the first worst, 500 times each. Strengths spread over thousands of points;
    # the fit still lands where Newton's method does (the prior keeps it finite).
    n = 12
    wins = np.zeros((n, n))
    for i in range(n - 3):
        first, middle, last = i, (i + 1, i + 2), i + 3
        for other in (first, *middle):
            wins[last, other] += 500
        for m in middle:
            wins[m, first] += 500
        wins[middle[0], middle[1]] += 250
        wins[middle[1], middle[0]] += 250
    augmented = wins + (1.0 / (2 * (n - 1))) * (1 - np.eye(n))
    theta = bt.fit(wins, prior=1.0)
    assert theta == pytest.approx(newton_fit(augmented), abs=1e-6)
    assert np.ptp(bt.elo(theta)) > 2000
    ratings = bt.rate(wins.astype(np.int64), np.zeros((n, n), dtype=np.int64), rounds=100, prior=1.0)
    assert ratings.rank[-1] == 1 and ratings.rank[0] == n


def test_a_player_who_never_won_has_no_mle_without_a_prior():
    wins = np.array([[0, 3], [0, 0]])
    with pytest.raises(ValueError, match="no win or no loss"):
        bt.fit(wins)
    scores = bt.elo(bt.fit(wins, prior=1.0))
    assert np.all(np.isfinite(scores)) and scores[0] > scores[1]


def test_recovers_known_strengths_from_many_battles():
    truth = np.array([1200.0, 1100.0, 1000.0, 950.0, 750.0])
    truth_centred = truth - truth.mean() + 1000
    rng = np.random.default_rng(3)
    n = len(truth)
    wins = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(i + 1, n):
            p = 1 / (1 + 10 ** ((truth[j] - truth[i]) / 400))
            won = rng.binomial(20_000, p)
            wins[i, j], wins[j, i] = won, 20_000 - won
    ratings = bt.rate(wins, np.zeros_like(wins), rounds=200, seed=1)
    assert ratings.scores == pytest.approx(truth_centred, abs=8)
    assert np.all(ratings.lower <= ratings.scores) and np.all(ratings.scores <= ratings.upper)
    assert np.all(ratings.upper - ratings.lower < 25)
    assert ratings.rank.tolist() == [1, 2, 3, 4, 5]


def test_bootstrap_is_seeded_and_resamples_every_battle():
    wins = np.array([[0, 30, 12], [10, 0, 25], [8, 5, 0]])
    ties = np.array([[0, 4, 0], [4, 0, 2], [0, 2, 0]])
    first = bt.bootstrap(wins, ties, rounds=100, seed=5)
    assert first.shape == (100, 3)
    assert np.array_equal(first, bt.bootstrap(wins, ties, rounds=100, seed=5))
    assert not np.array_equal(first, bt.bootstrap(wins, ties, rounds=100, seed=6))
    assert first.mean(axis=1) == pytest.approx(1000)  # every round on the same scale
    # The rounds scatter around the fit on all battles.
    point = bt.elo(bt.fit(bt.win_matrix(wins, ties)))
    assert np.median(first, axis=0) == pytest.approx(point, abs=15)


def test_ranks_and_rank_ranges_from_intervals():
    scores = np.array([1100.0, 1090.0, 1000.0, 810.0])
    lower = np.array([1060.0, 1040.0, 960.0, 780.0])
    upper = np.array([1140.0, 1130.0, 1045.0, 840.0])
    rank, best, worst = bt.ranks(scores, lower, upper)
    assert rank.tolist() == [1, 2, 3, 4]
    # 1 and 2 overlap; 3 overlaps 2 (1040 < 1045) but not 1; 4 overlaps nobody.
    assert best.tolist() == [1, 1, 2, 4]
    assert worst.tolist() == [2, 3, 3, 4]
    tied_rank, _, _ = bt.ranks(
        np.array([1000.0, 1000.0]), np.array([990.0, 990.0]), np.array([1010.0, 1010.0])
    )
    assert tied_rank.tolist() == [1, 1]


def test_win_rates_count_ties_as_halves_and_leave_strangers_empty():
    wins = np.array([[0, 3, 0], [1, 0, 0], [0, 0, 0]])
    ties = np.array([[0, 2, 0], [2, 0, 0], [0, 0, 0]])
    rates = bt.win_rates(wins, ties)
    assert rates[0, 1] == pytest.approx(4 / 6) and rates[1, 0] == pytest.approx(2 / 6)
    assert np.isnan(rates[0, 2]) and np.isnan(rates[2, 2])
