"""Exact evaluation of arms on replay tables, and the oracles learners are scored against.

Majority voting: the exact multinomial credit of N i.i.d. draws under the tie rule
(:func:`proxy.train.subsets.exact_majority`; the credit is symmetric in the wrong answers, so
rows are canonicalised — correct probability first, wrong ones sorted — and de-duplicated).
Best-of-N over a discrete score distribution with support values v_1 <= ... <= v_S and
CDF F: ``E[max of N] = sum_s v_s (F_s^N - F_{s-1}^N)``.

``U[c, p, N-1] = mean_x value(p, x, N) - lambda_c * N * E[cost of one sample of p]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proxy.train.subsets import exact_majority

__all__ = [
    "ExactTables",
    "Scores",
    "bon_expected_max",
    "exact_tables",
    "majority_credit_table",
    "score_actions",
]


def majority_credit_table(probs: np.ndarray, answers: np.ndarray, n_max: int) -> np.ndarray:
    """Exact credit per prompt, query and N: (P, X, n_max)."""
    n_prompts, n_queries, n_cat = probs.shape
    flat = probs.reshape(-1, n_cat)
    correct = np.tile(answers, n_prompts)
    right = flat[np.arange(flat.shape[0]), correct]
    wrong = np.sort(np.where(np.arange(n_cat) == correct[:, None], -1.0, flat), axis=1)[:, 1:]
    canon = np.round(np.column_stack([right, wrong]), 12)
    uniq, inverse = np.unique(canon, axis=0, return_inverse=True)
    credit = exact_majority(uniq, np.zeros(uniq.shape[0], dtype=np.int64), n_max)
    return credit[inverse.ravel()].reshape(n_prompts, n_queries, n_max)


def bon_expected_max(values: np.ndarray, probs: np.ndarray, n_max: int) -> np.ndarray:
    """E[max of N i.i.d. draws] per row for N = 1..n_max; values, probs (..., S)."""
    order = np.argsort(values, axis=-1, kind="stable")
    v = np.take_along_axis(values, order, axis=-1)
    cdf = np.cumsum(np.take_along_axis(probs, order, axis=-1), axis=-1)
    cdf = np.minimum(cdf / cdf[..., -1:], 1.0)
    prev = np.concatenate([np.zeros_like(cdf[..., :1]), cdf[..., :-1]], axis=-1)
    ns = np.arange(1, n_max + 1)
    mass = cdf[..., None, :] ** ns[:, None] - prev[..., None, :] ** ns[:, None]
    return (mass * v[..., None, :]).sum(axis=-1)


@dataclass(frozen=True)
class ExactTables:
    """Exact utilities U[c, p, N-1] on the train and the test split."""

    train: np.ndarray
    test: np.ndarray

    @property
    def train_oracle(self) -> np.ndarray:
        """Per context the (prompt, N) that is best on the train table."""
        return _argmax_arms(self.train)

    @property
    def test_oracle(self) -> np.ndarray:
        return _argmax_arms(self.test)

    def value(self, actions: np.ndarray, split: str = "test") -> np.ndarray:
        """Utility per context of ``actions`` (C, 2) = (prompt, N)."""
        table = self.train if split == "train" else self.test
        c = np.arange(table.shape[0])
        return table[c, actions[:, 0], actions[:, 1] - 1]


def _argmax_arms(table: np.ndarray) -> np.ndarray:
    n_ctx, _, n_max = table.shape
    flat = table.reshape(n_ctx, -1).argmax(axis=1)
    return np.column_stack([flat // n_max, flat % n_max + 1])


def exact_tables(env: object) -> ExactTables:
    """Exact utility matrices of an environment (cached on the env object)."""
    cached = getattr(env, "_exact_tables", None)
    if cached is not None:
        return cached
    tables = env.exact_utilities()  # type: ignore[attr-defined]
    env._exact_tables = tables  # type: ignore[attr-defined]
    return tables


@dataclass(frozen=True)
class Scores:
    """Mean over contexts (weighted by share) of train/test utility and two regrets, both on the
    test table: to the test oracle, and to the in-sample (train) oracle's arms."""

    train: float
    test: float
    regret_test_oracle: float
    regret_train_oracle: float


def score_actions(tables: ExactTables, actions: np.ndarray, shares: np.ndarray) -> Scores:
    w = np.asarray(shares, dtype=float) / np.sum(shares)
    train = float(w @ tables.value(actions, "train"))
    test = float(w @ tables.value(actions, "test"))
    t_or = float(w @ tables.value(tables.test_oracle, "test"))
    tr_or = float(w @ tables.value(tables.train_oracle, "test"))
    return Scores(train, test, t_or - test, tr_or - test)
