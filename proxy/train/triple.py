"""Prompt-only baselines: TRIPLE (sequential halving over prompts at N=1), TRIPLE with a
random N, and decoupled optimisation (best prompt at N=1 first, then the best N for it).

Halving: ``ceil(log2 |P|)`` rounds, round r gets ``(T - spent) / (rounds left)`` samples, every
live prompt is pulled ``m = floor(round budget / live prompts)`` times at N=1 on common queries,
each context keeps the better ``ceil(half)`` of its prompts by mean utility.
"""

from __future__ import annotations

from math import ceil, log2

import numpy as np

from proxy.train.base import Learner, QueryMode, is_number
from proxy.train.env import Env, Reuse

__all__ = ["Decoupled", "TripleN1", "TripleRandomN", "halve_prompts"]


def halve_prompts(learner: Learner, budget: int) -> np.ndarray:
    """Sequential halving over prompts at N=1 with ``budget`` samples; returns alive (C, P)."""
    env = learner._env
    n_ctx, n_p = len(env.contexts), env.n_prompts
    alive = np.ones((n_ctx, n_p), dtype=bool)
    rounds = max(1, ceil(log2(n_p))) if n_p > 1 else 1
    stop = learner.samples_ + budget
    for r in range(rounds):
        live = np.nonzero(alive.any(axis=0))[0]
        m = (stop - learner.samples_) // (rounds - r) // live.size
        if m > 0:
            learner._pull_crn(live, np.ones(live.size, dtype=np.int64), int(m))
        mean = learner.stats_.mean()[:, :, 0]
        keep = 1 if r == rounds - 1 else None
        for c in range(n_ctx):
            n_keep = keep or ceil(alive[c].sum() / 2)
            score = np.where(alive[c] & ~np.isnan(mean[c]), mean[c], -np.inf)
            order = np.lexsort((learner._rng.random(n_p), -score))
            alive[c] = False
            alive[c, order[:n_keep]] = True
    return alive


class TripleN1(Learner):
    """TRIPLE: prompt selection only, answering with N=1."""

    name = "triple-n1"

    def _run(self) -> np.ndarray:
        env = self._env
        best = halve_prompts(self, self.left)
        alive = np.zeros((len(env.contexts), env.n_prompts, env.n_max), dtype=bool)
        alive[:, :, 0] = best
        return alive


class TripleRandomN(Learner):
    """TRIPLE's prompt, served with an N drawn uniformly from 1..N_max."""

    name = "triple-random-n"

    def _run(self) -> np.ndarray:
        env = self._env
        best = halve_prompts(self, self.left)
        alive = np.zeros((len(env.contexts), env.n_prompts, env.n_max), dtype=bool)
        ns = self._rng.integers(0, env.n_max, len(env.contexts))
        for c in range(len(env.contexts)):
            alive[c, best[c], ns[c]] = True
        return alive

    def _choose(self, alive: np.ndarray | None) -> np.ndarray:
        assert alive is not None
        c, p, k = np.nonzero(alive)
        return np.column_stack([p[np.argsort(c)], k[np.argsort(c)] + 1])


class Decoupled(Learner):
    """Best prompt at N=1 (``share`` of the budget), then the best N for it (the rest):
    the chosen prompts are pulled at N_max on common queries, reused for every k."""

    name = "decoupled"

    def __init__(self, *, share: float = 0.5, reuse: Reuse = "subsets", queries: QueryMode = "cycle", seed: int | None = None) -> None:
        super().__init__(reuse=reuse, queries=queries, seed=seed)
        self.share = share

    def validate(self, env: Env | None = None) -> None:
        super().validate(env)
        self._require(is_number(self.share) and 0 < self.share < 1, "share", "a fraction in (0, 1)")

    def _run(self) -> np.ndarray:
        env = self._env
        best = halve_prompts(self, int(self._budget * self.share))
        chosen = np.nonzero(best.any(axis=0))[0]
        n = int(min(env.n_max, self.left // chosen.size))
        m = self.left // (n * chosen.size) if n > 0 else 0
        if m > 0:
            self._pull_crn(chosen, np.full(chosen.size, n), int(m))
        alive = np.zeros((len(env.contexts), env.n_prompts, env.n_max), dtype=bool)
        alive[:, :, :] = best[:, :, None]
        alive &= self.stats_.count[None] > 0
        return alive
