"""The live majority-voting environment: every pull really calls the model.

:class:`LiveMajorityEnv` implements the :class:`proxy.train.env.Env` protocol, so every learner
runs on it unchanged. A pull of (prompt ``p``, train question ``q``, ``n``) draws the next ``n``
samples of that pair (a per-pair counter, so a run's ``j``-th sample of a pair is always the same
cached draw) through :class:`proxy.train.sampler.LiveSampler`; every pull of one ``pull_many``
batch runs concurrently on the env's event loop. Each reply's answer is extracted and
normalised with the task's extractor (:mod:`proxy.pipeline.extract`) and compared with the
reference answer.

**Observation.** Contexts are preference profiles: objective weight ``w_c`` on accuracy and
``lam_c`` on cost (cost units: ``cost_unit_usd`` dollars). With ``credit_k`` the vote's credit
(1 right, 1/2 for a tie at the top that includes the reference, 0 wrong or no answer) and
``cost_k`` the cost of ``k`` samples plus the prompt's rewrite, ``U_c = w_c credit_k - lam_c
cost_k``. Replies with no extractable answer do not vote (as in :mod:`proxy.pipeline.vote`).

* ``reuse="subsets"``: for a pull with ``A`` abstentions and ``V = n - A`` votes, the exact
  credit of a uniformly random ``k``-subset is
  ``sum_a Hyp(a; n, A, k) * S_{k-a}``, where ``S_j`` is the exact expected credit of a random
  ``j``-subset of the votes (:func:`proxy.train.subsets.subset_majority`) and ``S_0 = 0``;
  ``cost_k = k * mean sample cost + rewrite cost``. One observation per pull.
* ``reuse="blocks"``: ``floor(n / k)`` disjoint blocks of ``k`` samples, each a vote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np

from proxy.config import PromptConfig
from proxy.train.env import Context, Observation, Pulls, Reuse
from proxy.train.sampler import Job, LiveSampler
from proxy.train.subsets import subset_majority, vote_credit
from proxy.train.taskset import TaskSet

__all__ = ["LiveMajorityEnv", "LivePulls", "abstain_subset_credit"]


@dataclass(frozen=True)
class LivePulls(Pulls):
    """:class:`Pulls` whose ``samples`` are per-pull answer categories: 0 is the reference
    answer, 1.. the other answers in order of appearance, -1 no answer. ``sample_cost`` (M, n)
    and ``fixed_cost`` (M,) (the prompt rewrite) are in cost units."""

    sample_cost: np.ndarray
    fixed_cost: np.ndarray


def abstain_subset_credit(samples: np.ndarray, kmax: int) -> np.ndarray:
    """Exact expected credit of a random k-subset, k = 1..kmax, for answers coded as in
    :class:`LivePulls` (module docstring); (M, kmax)."""
    m, n = samples.shape
    n_cat = max(2, int(samples.max()) + 1) if samples.size else 2
    counts = (samples[:, :, None] == np.arange(n_cat)).sum(axis=1)
    votes = counts.sum(axis=1)
    out = np.zeros((m, kmax))
    for v in np.unique(votes):
        v = int(v)
        if v == 0:
            continue
        rows = np.nonzero(votes == v)[0]
        kk = min(kmax, v)
        s = np.zeros((rows.size, kmax + 1))
        s[:, 1 : kk + 1] = subset_majority(counts[rows], np.zeros(rows.size, dtype=np.int64), kk)
        abstain = n - v
        for k in range(1, kmax + 1):
            total = comb(n, k)
            for a in range(max(0, k - v), min(k, abstain) + 1):
                if k - a >= 1:
                    out[rows, k - 1] += comb(abstain, a) * comb(v, k - a) / total * s[:, k - a]
    return out


def _block_credit(samples: np.ndarray, kmax: int) -> tuple[list[np.ndarray], list[int]]:
    """Per k the credits (M, floor(n/k)) of the disjoint blocks of k samples."""
    m, n = samples.shape
    n_cat = max(2, int(samples.max()) + 1) if samples.size else 2
    onehot = samples[:, :, None] == np.arange(n_cat)
    credits, blocks = [], []
    for k in range(1, kmax + 1):
        b = n // k
        cnt = onehot[:, : b * k].reshape(m, b, k, n_cat).sum(axis=2)
        cr = vote_credit(cnt, np.zeros((m, b), dtype=np.int64))
        credits.append(np.where(cnt.sum(axis=2) > 0, cr, 0.0))
        blocks.append(b)
    return credits, blocks


class LiveMajorityEnv:
    """See the module docstring. ``runner`` is the event loop the sampler's calls run on."""

    n_objectives = 1

    def __init__(self, task_set: TaskSet, prompts: Sequence[PromptConfig],
                 contexts: Sequence[Context], sampler: LiveSampler, runner: asyncio.Runner, *,
                 n_max: int, cost_unit_usd: float) -> None:
        if not prompts:
            raise ValueError("live training needs at least one prompt")
        if not contexts:
            raise ValueError("live training needs at least one context")
        self.task_set = task_set
        self.prompts = tuple(prompts)
        self.contexts = tuple(contexts)
        self.sampler = sampler
        self.runner = runner
        self.n_prompts = len(self.prompts)
        self.n_max = int(n_max)
        self.n_queries: int | None = len(task_set.train)
        self.cost_unit_usd = float(cost_unit_usd)
        self._w = np.array([c.weights[0] for c in self.contexts])
        self._lam = np.array([c.lam for c in self.contexts])
        self._next = np.zeros((self.n_prompts, len(task_set.train)), dtype=np.int64)
        # accuracy sums over every observation (for the policy file's accuracy intervals)
        self.acc_sum = np.zeros((self.n_prompts, self.n_max))
        self.acc_sq = np.zeros((self.n_prompts, self.n_max))
        self.acc_n = np.zeros((self.n_prompts, self.n_max))

    def pull(self, prompt: int, n: int, rng: np.random.Generator, query: int | None = None) -> LivePulls:
        q = None if query is None else np.array([query])
        return self.pull_many(np.array([prompt]), n, rng, q)

    def pull_many(self, prompts: np.ndarray, n: int, rng: np.random.Generator,
                  queries: np.ndarray | None = None) -> LivePulls:
        prompts = np.asarray(prompts, dtype=np.int64)
        if queries is None:
            queries = rng.integers(0, len(self.task_set.train), size=prompts.size)
        queries = np.asarray(queries, dtype=np.int64)
        jobs = []
        for p, q in zip(prompts.tolist(), queries.tolist()):
            jobs.append(Job(self.prompts[p], self.task_set.train[q], int(self._next[p, q]), n))
            self._next[p, q] += n
        drawn = self.runner.run(self.sampler.run_jobs(jobs))
        extract = self.task_set.extractor
        samples = np.full((prompts.size, n), -1, dtype=np.int64)
        for i, (job, d) in enumerate(zip(jobs, drawn)):
            cats = {job.item.answer: 0}
            for j, text in enumerate(d.texts):
                answer = extract(text)
                if answer is not None:
                    samples[i, j] = cats.setdefault(answer, len(cats))
        unit = self.cost_unit_usd
        cost = np.array([d.cost_usd for d in drawn], dtype=float).reshape(prompts.size, n) / unit
        fixed = np.array([d.rewrite_usd for d in drawn], dtype=float) / unit
        return LivePulls(prompts, queries, samples, cost, fixed)

    def observe(self, pulls: Pulls, kmax: int, reuse: Reuse) -> Observation:
        if not isinstance(pulls, LivePulls):
            raise TypeError("LiveMajorityEnv observes only its own pulls")
        m = pulls.prompts.size
        ks = np.arange(1, kmax + 1)
        w, lam = self._w[:, None, None], self._lam[:, None, None]
        if reuse == "subsets":
            credit = abstain_subset_credit(pulls.samples, kmax)
            cost = ks[None, :] * pulls.sample_cost.mean(axis=1)[:, None] + pulls.fixed_cost[:, None]
            util = w * credit[None] - lam * cost[None]
            obs = Observation(util, util * util, np.broadcast_to(credit[None, :, :, None], (len(self.contexts), m, kmax, 1)),
                              cost, np.ones((m, kmax)))
            self._accumulate(pulls.prompts, credit, credit * credit, np.ones((m, kmax)))
            return obs
        if reuse != "blocks":
            raise ValueError(f"unknown reuse estimator {reuse!r}")
        credits, blocks = _block_credit(pulls.samples, kmax)
        shape = (len(self.contexts), m, kmax)
        util, util_sq = np.zeros(shape), np.zeros(shape)
        cr_sum, cr_sq, cost = np.zeros((m, kmax)), np.zeros((m, kmax)), np.zeros((m, kmax))
        for k, (cr, b) in enumerate(zip(credits, blocks), 1):
            block_cost = pulls.sample_cost[:, : b * k].reshape(m, b, k).sum(axis=2) + pulls.fixed_cost[:, None]
            u = self._w[:, None, None] * cr[None] - self._lam[:, None, None] * block_cost[None]
            util[:, :, k - 1], util_sq[:, :, k - 1] = u.sum(axis=2), (u * u).sum(axis=2)
            cr_sum[:, k - 1], cr_sq[:, k - 1] = cr.sum(axis=1), (cr * cr).sum(axis=1)
            cost[:, k - 1] = block_cost.sum(axis=1)
        count = np.broadcast_to(np.array(blocks, dtype=float), (m, kmax)).copy()
        self._accumulate(pulls.prompts, cr_sum, cr_sq, count)
        return Observation(util, util_sq, np.broadcast_to(cr_sum[None, :, :, None], (*shape, 1)), cost, count)

    def _accumulate(self, prompts: np.ndarray, s: np.ndarray, sq: np.ndarray, n: np.ndarray) -> None:
        k = s.shape[1]
        np.add.at(self.acc_sum[:, :k], prompts, s)
        np.add.at(self.acc_sq[:, :k], prompts, sq)
        np.add.at(self.acc_n[:, :k], prompts, n)

    def accuracy_interval(self, prompt: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
        """A normal-approximation interval on arm (prompt, n)'s accuracy, clipped to [0, 1]."""
        cnt = self.acc_n[prompt, n - 1]
        if cnt < 2:
            return None
        mean = self.acc_sum[prompt, n - 1] / cnt
        var = max(self.acc_sq[prompt, n - 1] / cnt - mean * mean, 0.0)
        hw = z * (var / (cnt - 1)) ** 0.5
        return max(0.0, float(mean - hw)), min(1.0, float(mean + hw))
