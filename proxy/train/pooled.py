"""Pooled (plug-in) estimates for majority voting on a finite train set.

A pull of ``n`` answers of prompt p on query x adds to the answer counts of (p, x). The credit
of a ``k``-vote on (p, x) is then estimated for every ``k = 1..K`` at once, by the exact
multinomial credit of the empirical answer distribution ``counts / sum(counts)`` (the
maximum-likelihood plug-in; :func:`proxy.train.subsets.exact_majority`), and the arm (p, k) by
the mean over the queries p was pulled on, minus ``lambda_c * k * cost_p``.

Against the unbiased k-subset mean of each pull (``reuse="subsets"``) this estimates every scale
from a few answers per query: a vote of 32 whose winner is clear after 4 answers needs no 32
answers to be known, so a budget spread over many queries at a small ``n`` removes most of the
query-to-query noise that dominates the comparison of prompts. Its bias (a near-tie read from a
few answers) falls with the answers per query and is shared by prompts pulled on the same
queries. Credit curves depend only on the count signature (correct count, sorted wrong counts),
so each distinct signature is computed once per fit.

Once every prompt still compared has answers on every query, more queries cannot be had, and
:meth:`PooledStats.revisits` picks where further answers help most: greedily, the query whose
next ``n`` answers shrink most the summed variance of the compared prompts' credit estimates,
``sum_p v_pq (1 / a_pq - 1 / (a_pq + n))``, with ``a_pq`` the answers pooled so far and
``v_pq = c (1 - c)`` for the estimated credit ``c`` of p's best scale in some context (the
largest over contexts). A query every prompt answers the same way (``c`` near 0 or 1) gets no
more; near ties get the most. The arm is still the plain mean over queries, so revisiting where
it is uncertain moves no query's weight, only its noise.
"""

from __future__ import annotations

import heapq

import numpy as np

from proxy.train.env import Env, Pulls
from proxy.train.stats import ArmStats, ArmTable
from proxy.train.subsets import exact_majority

__all__ = ["PooledStats"]


class PooledStats(ArmStats):
    """Answer counts per (prompt, query) and the plug-in estimates of every arm.

    ``answers`` (Q,) is the correct category of each train query, ``cost`` (P,) the cost of
    one sample of each prompt, ``lams`` (C,) each context's cost coefficient. ``count`` (P, K)
    is the number of queries each prompt was pulled on (the same for every k); the running sums
    of :class:`ArmStats` stay empty."""

    def __init__(self, answers: np.ndarray, n_categories: int, cost: np.ndarray,
                 lams: np.ndarray, n_max: int) -> None:
        super().__init__(len(lams), len(cost), n_max, 1)
        self.answers = np.asarray(answers, dtype=np.int64)
        self.sample_cost = np.asarray(cost, dtype=float)
        self.lams = np.asarray(lams, dtype=float)
        self.counts = np.zeros((len(cost), self.answers.size, n_categories), dtype=np.int64)
        self._credit = np.zeros((len(cost), self.answers.size, n_max))
        self._dirty = np.zeros((len(cost), self.answers.size), dtype=bool)
        self._curves: dict[bytes, np.ndarray] = {}
        self._mean: np.ndarray | None = None

    def record(self, env: Env, pulls: Pulls, reuse: str) -> None:
        """Pool the answers of ``pulls`` (``env.answer_counts``)."""
        self.add_counts(pulls.prompts, pulls.queries, env.answer_counts(pulls))  # type: ignore[attr-defined]

    def add_counts(self, prompts: np.ndarray, queries: np.ndarray, counts: np.ndarray) -> None:
        """Pool the answer counts (M, categories) of pulls of ``prompts`` on ``queries``."""
        np.add.at(self.counts, (prompts, queries), counts)
        self._dirty[prompts, queries] = True
        self._mean = None
        self.count[:] = (self.counts.sum(axis=2) > 0).sum(axis=1)[:, None]

    def _refresh(self) -> None:
        p, q = np.nonzero(self._dirty)
        if p.size == 0:
            return
        c = self.counts[p, q]
        right = c[np.arange(p.size), self.answers[q]]
        wrong = c.copy()
        wrong[np.arange(p.size), self.answers[q]] = -1
        wrong = -np.sort(-wrong, axis=1)[:, :-1]  # descending, the correct slot dropped
        sig = np.column_stack([right, wrong])
        uniq, inverse = np.unique(sig, axis=0, return_inverse=True)
        keys = [row.tobytes() for row in uniq]
        todo = [i for i, key in enumerate(keys) if key not in self._curves]
        if todo:
            rows = uniq[todo].astype(float)
            curves = exact_majority(rows / rows.sum(axis=1, keepdims=True),
                                    np.zeros(len(todo), dtype=np.int64), self._credit.shape[2])
            self._curves.update(zip((keys[i] for i in todo), curves))
        self._credit[p, q] = np.stack([self._curves[key] for key in keys])[inverse.ravel()]
        self._dirty[p, q] = False

    def _per_query(self) -> tuple[np.ndarray, np.ndarray]:
        """Credit (P, Q, K) of every pulled (prompt, query) and the pulled mask (P, Q)."""
        self._refresh()
        return self._credit, self.counts.sum(axis=2) > 0

    def mean(self) -> np.ndarray:
        """Plug-in utility (C, P, K); ``nan`` for prompts never pulled."""
        if self._mean is None:
            credit, seen = self._per_query()
            n = seen.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_credit = credit.sum(axis=1) / n[:, None]
            ks = np.arange(1, credit.shape[2] + 1)
            cost = ks * self.sample_cost[:, None]  # (P, K): k samples of each prompt
            self._mean = mean_credit[None] - self.lams[:, None, None] * cost[None]
        return self._mean

    def chained_mean(self) -> np.ndarray:
        """Every scale of a prompt comes from the same pooled counts: the plain estimate."""
        return self.mean()

    def table(self, arms: np.ndarray) -> ArmTable:
        """Estimates of ``arms`` with a normal interval over the queries pulled."""
        mean = self.mean()
        credit, seen = self._per_query()
        p, k = arms[:, 0], arms[:, 1] - 1
        x, pulled = credit[p, :, k], seen[p]  # (arms, Q): each arm's credit per query
        n = pulled.sum(axis=1).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.where(pulled, x - (x * pulled).sum(axis=1, keepdims=True) / n[:, None], 0.0)
            sd = np.sqrt((dev**2).sum(axis=1) / np.maximum(n - 1, 1))
            hw = np.where(n >= 2, 1.96 * sd / np.sqrt(n), np.inf)
        util = mean[:, p, k]
        cost = arms[:, 1] * self.sample_cost[p]
        objectives = (util + self.lams[:, None] * cost)[:, :, None]  # the credit
        return ArmTable(arms.copy(), util, objectives, cost, n,
                        util - hw[None], util + hw[None])

    def unseen(self, prompts: np.ndarray) -> np.ndarray:
        """The queries on which some of ``prompts`` has no answer yet (ascending)."""
        return np.nonzero((self.counts[prompts].sum(axis=2) == 0).any(axis=0))[0]

    def revisits(self, prompts: np.ndarray, n: int, m: int) -> np.ndarray:
        """``m`` queries (repeats allowed) to pull each of ``prompts`` on with ``n`` answers, by
        the greedy variance rule of the module docstring; every one of ``prompts`` has answers
        on every query (:meth:`unseen` is empty)."""
        credit, _ = self._per_query()
        mean = self.mean()[:, prompts]  # (C, live, K)
        v = np.zeros((len(prompts), credit.shape[1]))
        for best_k in mean.argmax(axis=2):  # per context, each prompt's best scale
            c = credit[prompts[:, None], np.arange(credit.shape[1])[None], best_k[:, None]]
            v = np.maximum(v, c * (1.0 - c))
        answers = self.counts[prompts].sum(axis=2).astype(float)  # (live, Q), all >= 1

        def gain(q: int) -> float:
            a = answers[:, q]
            return float((v[:, q] * (1.0 / a - 1.0 / (a + n))).sum())

        def key(q: int) -> tuple[float, float, int]:  # ties: fewer answers, then the lower index
            return -gain(q), float(answers[:, q].sum()), q

        heap = [key(q) for q in range(credit.shape[1])]
        heapq.heapify(heap)
        out = np.empty(m, dtype=np.int64)
        for i in range(m):
            q = heapq.heappop(heap)[2]
            out[i] = q
            answers[:, q] += n
            heapq.heappush(heap, key(q))
        return out
