"""Best-of-N replay environment and a seeded generator of synthetic instances.

Per (prompt, query) a categorical distribution over ``S`` outcome vectors (``D`` objectives)
with a cost per outcome. In context c a response scores ``s = w_c . o``; Best-of-N returns the
highest-scoring of N samples, and every sample is paid for:
``U_c(p, N) = E[max_{i<=N} w_c . o_i] - lambda_c * N * E[cost]``.

Reuse of a pull of n samples (scores sorted ascending ``v_(1..n)``): ``reuse="subsets"`` uses
``E[max of a random k-subset] = sum_i v_(i) C(i-1, k-1) / C(n, k)`` and ``k * mean cost``;
``reuse="blocks"`` takes the max of each of ``floor(n/k)`` disjoint blocks.
"""

from __future__ import annotations

import numpy as np

from proxy.train.env import Context, Observation, Pulls, Reuse
from proxy.train.errors import TableError
from proxy.train.evaluate import ExactTables, bon_expected_max
from proxy.train.subsets import bon_subset_weights

__all__ = ["BON_CONTEXTS", "ReplayBestOfNEnv", "make_synthetic_bon"]

BON_CONTEXTS = (
    Context("quality", 0.0, (1.0, 0.0)),
    Context("balanced", 0.2, (0.5, 0.5)),
    Context("frugal", 1.0, (0.8, 0.2)),
)


def _check(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(arr, dtype=float)
    if arr.shape != shape or not np.isfinite(arr).all():
        raise TableError(f"array {name!r} has shape {arr.shape} or non-finite entries, expected {shape}")
    return arr


class ReplayBestOfNEnv:
    """Best-of-N over tabulated outcome distributions; ``train_*`` pulled, ``test_*`` scored."""

    def __init__(
        self,
        train_outcomes: np.ndarray, train_probs: np.ndarray, train_costs: np.ndarray,
        test_outcomes: np.ndarray, test_probs: np.ndarray, test_costs: np.ndarray,
        *, n_max: int = 16, contexts: tuple[Context, ...] = BON_CONTEXTS,
    ) -> None:
        p, x, s, d = np.shape(train_outcomes)
        self.train_outcomes = _check("train_outcomes", train_outcomes, (p, x, s, d))
        self.train_probs = _check("train_probs", train_probs, (p, x, s))
        self.train_costs = _check("train_costs", train_costs, (p, x, s))
        xt = np.shape(test_outcomes)[1]
        self.test_outcomes = _check("test_outcomes", test_outcomes, (p, xt, s, d))
        self.test_probs = _check("test_probs", test_probs, (p, xt, s))
        self.test_costs = _check("test_costs", test_costs, (p, xt, s))
        for name, pr in (("train_probs", self.train_probs), ("test_probs", self.test_probs)):
            if (pr < 0).any() or not np.allclose(pr.sum(axis=-1), 1.0, atol=1e-6):
                raise TableError(f"array {name!r} has rows that are negative or do not sum to 1")
        if any(len(c.weights) != d for c in contexts):
            raise TableError(f"every context needs {d} objective weights")
        self.n_prompts, self.n_queries, self.n_objectives = p, x, d
        self.n_max = int(n_max)
        self.contexts = tuple(contexts)
        self._w = np.array([c.weights for c in self.contexts])  # (C, D)
        self._lams = np.array([c.lam for c in self.contexts])
        self._cdf = np.cumsum(self.train_probs, axis=-1)

    def pull(self, prompt: int, n: int, rng: np.random.Generator, query: int | None = None) -> Pulls:
        return self.pull_many(np.array([prompt]), n, rng, None if query is None else np.array([query]))

    def pull_many(
        self, prompts: np.ndarray, n: int, rng: np.random.Generator, queries: np.ndarray | None = None
    ) -> Pulls:
        prompts = np.asarray(prompts, dtype=np.int64)
        if queries is None:
            queries = rng.integers(0, self.n_queries, size=prompts.size)
        queries = np.asarray(queries, dtype=np.int64)
        cdf = self._cdf[prompts, queries]
        idx = (rng.random((prompts.size, n))[:, :, None] >= cdf[:, None, :]).sum(axis=2)
        return Pulls(prompts, queries, np.minimum(idx, cdf.shape[1] - 1))

    def observe(self, pulls: Pulls, kmax: int, reuse: Reuse) -> Observation:
        p, x, idx = pulls.prompts[:, None], pulls.queries[:, None], pulls.samples
        obj = self.train_outcomes[p, x, idx]  # (M, n, D)
        cost = self.train_costs[p, x, idx]  # (M, n)
        scores = np.einsum("cd,mnd->cmn", self._w, obj)
        m, n = cost.shape
        ks = np.arange(1, kmax + 1)
        lam = self._lams[:, None, None]
        if reuse == "subsets":
            order = np.argsort(scores, axis=2, kind="stable")
            w = bon_subset_weights(n, kmax)  # (n, K)
            best = np.take_along_axis(scores, order, axis=2) @ w  # (C, M, K)
            objs = np.einsum("cmnd,nk->cmkd", obj[None].repeat(len(self.contexts), 0)[
                np.arange(len(self.contexts))[:, None, None], np.arange(m)[None, :, None], order], w)
            cost_k = cost.mean(axis=1)[:, None] * ks  # (M, K)
            util = best - lam * cost_k[None]
            return Observation(util, util * util, objs, cost_k, np.ones((m, kmax)))
        if reuse != "blocks":
            raise ValueError(f"unknown reuse estimator {reuse!r}")
        n_ctx = len(self.contexts)
        util = np.zeros((n_ctx, m, kmax))
        util_sq = np.zeros_like(util)
        objs = np.zeros((n_ctx, m, kmax, self.n_objectives))
        cost_k = np.zeros((m, kmax))
        count = np.zeros((m, kmax))
        for k in ks:
            b = n // k
            sc = scores[:, :, : b * k].reshape(n_ctx, m, b, k)
            arg = sc.argmax(axis=3)  # (C, M, b)
            top = np.take_along_axis(sc, arg[..., None], axis=3)[..., 0]
            blk_cost = cost[:, : b * k].reshape(m, b, k).sum(axis=2)  # (M, b)
            u = top - lam * blk_cost[None]
            util[:, :, k - 1], util_sq[:, :, k - 1] = u.sum(axis=2), (u * u).sum(axis=2)
            ob = obj[:, : b * k].reshape(m, b, k, -1)
            sel = np.take_along_axis(ob[None], arg[..., None, None], axis=3)[..., 0, :]  # (C, M, b, D)
            objs[:, :, k - 1] = sel.sum(axis=2)
            cost_k[:, k - 1], count[:, k - 1] = blk_cost.sum(axis=1), b
        return Observation(util, util_sq, objs, cost_k, count)

    def exact_utilities(self) -> ExactTables:
        out = []
        for obj, pr, cost in (
            (self.train_outcomes, self.train_probs, self.train_costs),
            (self.test_outcomes, self.test_probs, self.test_costs),
        ):
            scores = np.einsum("cd,pxsd->cpxs", self._w, obj)
            emax = bon_expected_max(scores, np.broadcast_to(pr, scores.shape), self.n_max).mean(axis=2)
            mean_cost = (pr * cost).sum(axis=-1).mean(axis=1)  # (P,)
            ns = np.arange(1, self.n_max + 1)
            out.append(emax - self._lams[:, None, None] * ns * mean_cost[None, :, None])
        return ExactTables(out[0], out[1])


def make_synthetic_bon(
    seed: int, n_prompts: int = 8, n_queries: int = 40, *, n_test: int = 40, n_support: int = 8,
    n_deceptive: int = 2, n_max: int = 16, contexts: tuple[Context, ...] = BON_CONTEXTS,
) -> ReplayBestOfNEnv:
    """A seeded two-objective instance. The first ``n_deceptive`` prompts are *deceptive*:
    high mean, low variance outcomes (best at N=1, gain little from more samples); the others
    have a lower mean but a wide spread, so Best-of-N lifts them above the deceptive ones."""
    rng = np.random.default_rng(seed)
    base_cost = rng.uniform(0.005, 0.01, n_prompts)

    def split(n_x: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shape = (n_prompts, n_x, n_support, 2)
        difficulty = rng.normal(0.0, 0.1, (1, n_x, 1, 1))
        spread = np.where(np.arange(n_prompts) < n_deceptive, 0.04, rng.uniform(0.2, 0.3, n_prompts))
        mean = np.where(np.arange(n_prompts) < n_deceptive, 0.62, rng.uniform(0.45, 0.55, n_prompts))
        obj = mean[:, None, None, None] + difficulty + spread[:, None, None, None] * rng.standard_normal(shape)
        probs = rng.dirichlet(np.full(n_support, 2.0), (n_prompts, n_x))
        costs = base_cost[:, None, None] * rng.uniform(0.5, 1.5, (n_prompts, n_x, n_support))
        return np.clip(obj, 0.0, 1.0), probs, costs

    return ReplayBestOfNEnv(*split(n_queries), *split(n_test), n_max=n_max, contexts=contexts)
