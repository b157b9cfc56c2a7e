"""Baselines from the IAPO paper, on the same budget accounting and pull reuse as PSST.

* ``Uniform``: round-robin over all (p, N) arms in a shuffled order.
* ``RandomArms``: arms drawn uniformly at random until the budget is spent.
* ``UCB``: per context ``argmax mean + c sqrt(2 ln t / n)`` (unobserved arms first).
* ``EpsilonGreedy``: per context a random arm with probability ``epsilon``, else the best mean.
* ``Softmax``: per context an arm with probability ``∝ exp(mean / tau)``.

Each then names, per context, the arm with the best empirical mean (ties: smaller N).
Adaptive learners take one step per context at a time; the arms of a step share a query.
"""

from __future__ import annotations

import numpy as np

from proxy.train.base import Learner, QueryMode, is_number
from proxy.train.env import Env, Reuse

__all__ = ["UCB", "EpsilonGreedy", "RandomArms", "Softmax", "Uniform"]


class _Sequence(Learner):
    """Pull a precomputed sequence of arms until the next one no longer fits the budget."""

    def _arm_sequence(self, n_prompts: int, n_max: int, length: int) -> np.ndarray:
        raise NotImplementedError

    def _run(self) -> None:
        env = self._env
        arms = self._arm_sequence(env.n_prompts, env.n_max, self._budget)
        cost = np.cumsum(arms[:, 1])
        arms = arms[cost <= self._budget]
        if arms.size == 0:  # not even one arm fits: spend what is left on N-capped pulls
            arms = np.column_stack([self._rng.permutation(env.n_prompts), np.ones(env.n_prompts, dtype=int)])
            arms = arms[: self._budget]
        queries = self._next_queries(len(arms))
        for n in np.unique(arms[:, 1]):
            sel = arms[:, 1] == n
            self._pull(arms[sel, 0], int(n), None if queries is None else queries[sel])
        return None


class Uniform(_Sequence):
    """Round-robin over every arm (p, N), each pass in a fresh random order."""

    name = "uniform"

    def _arm_sequence(self, n_prompts: int, n_max: int, length: int) -> np.ndarray:
        grid = np.array([(p, n) for p in range(n_prompts) for n in range(1, n_max + 1)])
        passes = length // int(grid[:, 1].sum()) + 1
        return np.concatenate([grid[self._rng.permutation(len(grid))] for _ in range(passes)])


class RandomArms(_Sequence):
    """Arms drawn uniformly at random (with replacement)."""

    name = "random"

    def _arm_sequence(self, n_prompts: int, n_max: int, length: int) -> np.ndarray:
        count = length  # at least one sample each: never shorter than needed
        return np.column_stack([self._rng.integers(0, n_prompts, count), self._rng.integers(1, n_max + 1, count)])


class _Adaptive(Learner):
    """One arm per context per step, chosen by ``_select`` from the current statistics."""

    def _select(self, mean: np.ndarray, count: np.ndarray, t: int) -> np.ndarray:
        """Flat arm index (p * K + k - 1) per context."""
        raise NotImplementedError

    def _run(self) -> None:
        env = self._env
        n_max = env.n_max
        # initialise: one pull of every prompt at the largest scale a quarter of the budget affords
        n0 = int(min(n_max, max(1, (self._budget // 4) // env.n_prompts)))
        self._pull_crn(np.arange(env.n_prompts), np.full(env.n_prompts, n0), 1)
        t = 1
        while self.left > 0:
            picks = np.unique(self._select(self.stats_.mean(), self.stats_.count, t))
            prompts, ns = picks // n_max, np.minimum(picks % n_max + 1, self.left)
            q = self._next_queries(1)
            for p, n in zip(prompts, ns):
                if n > self.left:
                    break
                self._pull(np.array([p]), int(n), q)
            t += 1
        return None


def _fill(mean: np.ndarray) -> np.ndarray:
    """Unobserved arms take the best observed mean of their context (optimistic)."""
    best = np.nanmax(mean.reshape(mean.shape[0], -1), axis=1)
    return np.where(np.isnan(mean), best[:, None, None], mean)


class UCB(_Adaptive):
    name = "ucb"

    def __init__(self, *, c: float = 1.0, reuse: Reuse = "subsets", queries: QueryMode = "cycle", seed: int | None = None) -> None:
        super().__init__(reuse=reuse, queries=queries, seed=seed)
        self.c = c

    def validate(self, env: Env | None = None) -> None:
        super().validate(env)
        self._require(is_number(self.c) and self.c >= 0, "c", "a number >= 0")

    def _select(self, mean: np.ndarray, count: np.ndarray, t: int) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # unobserved arms: masked below
            bonus = self.c * np.sqrt(2 * np.log(t + 1) / count)
        score = np.where(count[None] > 0, np.nan_to_num(mean) + bonus[None], np.inf)
        score = score + 1e-9 * self._rng.random(score.shape)
        return score.reshape(score.shape[0], -1).argmax(axis=1)


class EpsilonGreedy(_Adaptive):
    name = "epsilon-greedy"

    def __init__(self, *, epsilon: float = 0.1, reuse: Reuse = "subsets", queries: QueryMode = "cycle", seed: int | None = None) -> None:
        super().__init__(reuse=reuse, queries=queries, seed=seed)
        self.epsilon = epsilon

    def validate(self, env: Env | None = None) -> None:
        super().validate(env)
        self._require(is_number(self.epsilon) and 0 <= self.epsilon <= 1, "epsilon", "a probability in [0, 1]")

    def _select(self, mean: np.ndarray, count: np.ndarray, t: int) -> np.ndarray:
        flat = _fill(mean).reshape(mean.shape[0], -1)
        greedy = (flat + 1e-9 * self._rng.random(flat.shape)).argmax(axis=1)
        explore = self._rng.random(flat.shape[0]) < self.epsilon
        return np.where(explore, self._rng.integers(0, flat.shape[1], flat.shape[0]), greedy)


class Softmax(_Adaptive):
    name = "softmax"

    def __init__(self, *, tau: float = 0.05, reuse: Reuse = "subsets", queries: QueryMode = "cycle", seed: int | None = None) -> None:
        super().__init__(reuse=reuse, queries=queries, seed=seed)
        self.tau = tau

    def validate(self, env: Env | None = None) -> None:
        super().validate(env)
        self._require(is_number(self.tau) and self.tau > 0, "tau", "a number > 0")

    def _select(self, mean: np.ndarray, count: np.ndarray, t: int) -> np.ndarray:
        flat = _fill(mean).reshape(mean.shape[0], -1) / self.tau
        prob = np.exp(flat - flat.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        u = self._rng.random((flat.shape[0], 1))
        return np.minimum((np.cumsum(prob, axis=1) < u).sum(axis=1), flat.shape[1] - 1)
