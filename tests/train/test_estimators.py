"""Reuse estimators and exact evaluation against brute force and Monte Carlo."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from proxy.train.evaluate import bon_expected_max, majority_credit_table
from proxy.train.subsets import block_majority, bon_subset_weights, exact_majority, subset_majority, vote_credit


def _credit(answers: list[int], correct: int, n_cat: int) -> float:
    return float(vote_credit(np.bincount(answers, minlength=n_cat)[None], np.array([correct]))[0])


def test_vote_credit_tie_rule() -> None:
    counts = np.array([[3, 1, 0], [2, 2, 0], [1, 2, 0], [1, 1, 1]])
    assert vote_credit(counts, np.zeros(4, dtype=int)).tolist() == [1.0, 0.5, 0.0, 0.5]


@pytest.mark.parametrize("seed", range(4))
def test_subset_estimator_equals_enumeration_of_subsets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_cat = 8, 4
    answers = rng.integers(0, n_cat, n)
    correct = int(rng.integers(0, n_cat))
    est = subset_majority(np.bincount(answers, minlength=n_cat)[None], np.array([correct]), n)[0]
    for k in range(1, n + 1):
        brute = np.mean([_credit(list(answers[list(s)]), correct, n_cat) for s in itertools.combinations(range(n), k)])
        assert est[k - 1] == pytest.approx(brute, abs=1e-12)


def test_subset_estimator_is_unbiased_for_the_k_vote() -> None:
    p = np.array([0.45, 0.3, 0.15, 0.1])
    exact = exact_majority(p[None], np.array([0]), 5)[0]
    rng = np.random.default_rng(0)
    counts = rng.multinomial(9, p, size=20000)
    est = subset_majority(counts, np.zeros(len(counts), dtype=int), 5).mean(axis=0)
    assert np.allclose(est, exact, atol=0.01)


def test_exact_majority_equals_sum_over_sequences() -> None:
    p = np.array([0.35, 0.4, 0.15, 0.1])
    exact = exact_majority(p[None], np.array([0]), 5)[0]
    for n in range(1, 6):
        total = sum(np.prod(p[list(s)]) * _credit(list(s), 0, 4) for s in itertools.product(range(4), repeat=n))
        assert exact[n - 1] == pytest.approx(total, abs=1e-12)
    assert exact[1] == pytest.approx(exact[0])  # under the tie rule N=2 equals N=1


def test_exact_table_matches_monte_carlo() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5), (2, 3))
    answers = np.array([0, 2, 4])
    table = majority_credit_table(probs, answers, 7)
    draws = rng.multinomial(7, probs[1, 2], size=40000)
    mc = vote_credit(draws, np.full(len(draws), 4)).mean()
    assert table[1, 2, 6] == pytest.approx(mc, abs=0.01)


def test_blocks_estimator_matches_definition() -> None:
    answers = np.array([[0, 0, 1, 2, 0, 1, 1]])
    sums, squares, blocks = block_majority(answers, np.array([0]), 3, 3)
    assert blocks[0].tolist() == [7, 3, 2]
    assert sums[0, 0] == 3  # three single answers are correct
    assert sums[0, 1] == 1.0 + 0.0 + 0.5  # blocks (0,0) (1,2) (0,1)
    assert sums[0, 2] == 1.0 + 0.5  # blocks (0,0,1) -> correct, (2,0,1) -> 3-way tie
    assert squares[0, 1] == 1.25


def test_bon_subset_weights_equal_enumeration() -> None:
    rng = np.random.default_rng(1)
    v = np.sort(rng.random(7))
    est = v @ bon_subset_weights(7, 7)
    for k in range(1, 8):
        assert est[k - 1] == pytest.approx(np.mean([v[list(s)].max() for s in itertools.combinations(range(7), k)]))


def test_bon_expected_max_matches_monte_carlo() -> None:
    values = np.array([0.2, 0.9, 0.5, 0.5])
    probs = np.array([0.4, 0.1, 0.3, 0.2])
    exact = bon_expected_max(values, probs, 4)
    draws = np.random.default_rng(2).choice(values, p=probs, size=(50000, 4))
    assert exact[0] == pytest.approx(values @ probs)
    assert exact[3] == pytest.approx(draws.max(axis=1).mean(), abs=0.005)


def test_chained_mean_compares_scales_on_the_pulls_that_saw_both() -> None:
    from proxy.train.env import Observation
    from proxy.train.stats import ArmStats

    def obs(util: list[float]) -> Observation:
        u = np.array([[util]])  # one context, one pull
        ones = np.ones((1, len(util)))
        return Observation(u, u * u, u[..., None], ones, ones)

    stats = ArmStats(1, 1, 3, 1)
    for row in ([0.2, 0.4], [0.6, 0.7], [1.0, 1.0]):  # three pulls at N=2 ...
        stats.add(np.array([0]), obs(row))
    stats.add(np.array([0]), obs([0.0, 0.1, 0.5]))  # ... and one at N=3
    plain = stats.mean()[0, 0]
    chained = stats.chained_mean()[0, 0]
    assert plain.tolist() == pytest.approx([0.45, 0.55, 0.5])
    # k=1 over all four pulls; k=2 adds the mean step 1->2 over the four; k=3 the one step 2->3
    assert chained.tolist() == pytest.approx([0.45, 0.45 + 0.1, 0.45 + 0.1 + 0.4])
    assert np.isnan(ArmStats(1, 1, 3, 1).chained_mean()).all()
