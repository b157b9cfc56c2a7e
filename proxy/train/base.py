"""The learner interface shared by PSST and the baselines (scikit-learn manner).

``__init__`` stores parameters; :meth:`Learner.validate` checks them (``fit`` calls it first, and
so do :func:`~proxy.train.registry.make_learner` and the CLIs, before anything is spent: a bad
parameter is a :class:`~proxy.train.errors.ParamError` naming the learner and the parameter);
``fit(env, budget)`` spends at most ``budget`` samples and sets
``actions_`` (C, 2) = (prompt, N) per context, ``estimates_`` (:class:`ArmTable`),
``samples_`` (samples spent, never above the budget), ``stats_`` (:class:`ArmStats`) and
``reuse_`` (the reuse estimator the fit used).

Queries: with ``queries="cycle"`` train queries are drawn without replacement from a shuffled
cycle of the finite train set (every batch of pulls in a round uses the same queries for all
prompts: common random numbers); ``queries="iid"`` draws each pull's query uniformly.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from proxy.train.env import Env, Reuse
from proxy.train.errors import BudgetError, ParamError
from proxy.train.stats import ArmStats

__all__ = ["Learner", "QueryMode", "is_int", "is_number"]

QueryMode = Literal["cycle", "iid"]


def is_int(value: object) -> bool:
    """An integer parameter (``True`` / ``False`` are not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite real parameter (integers count; booleans do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(float(value))


class Learner:
    """Base class: budget accounting, query schedule, pulls feeding shared statistics."""

    name: ClassVar[str] = "learner"  # the registry name, used in error messages
    reuses: ClassVar[tuple[str, ...]] = ("subsets", "blocks")  # the reuse values it accepts
    top_report = 8  # arms per context in estimates_ for learners without elimination

    def __init__(self, *, reuse: Reuse = "subsets", queries: QueryMode = "cycle", seed: int | None = None) -> None:
        self.reuse = reuse
        self.queries = queries
        self.seed = seed

    # -- scikit-learn style helpers -------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def validate(self, env: Env | None = None) -> None:
        """Raise :class:`ParamError` unless every parameter is usable; with ``env`` (anything with
        its ``n_prompts`` and ``n_max``) also the limits that depend on its shape."""
        *head, last = (f"'{r}'" for r in self.reuses)
        self._require(self.reuse in self.reuses, "reuse", f"{', '.join(head)} or {last}")
        self._require(self.queries in ("cycle", "iid"), "queries", "'cycle' or 'iid'")
        self._require(self.seed is None or (is_int(self.seed) and self.seed >= 0), "seed", "an integer >= 0")

    def _require(self, ok: bool, param: str, rule: str) -> None:
        if not ok:
            raise ParamError(f"{self.name}: {param} must be {rule}, got {getattr(self, param)!r}")

    def min_budget(self, env: Env) -> int:
        """Smallest budget this learner can use: one single-sample pull of every prompt."""
        return int(env.n_prompts)

    # -- fit ------------------------------------------------------------------------------
    def fit(self, env: Env, budget: int) -> Learner:
        self.validate(env)
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
            raise BudgetError(f"budget must be an integer, got {budget!r}")
        if budget < self.min_budget(env):
            raise BudgetError(f"budget {budget} is below the minimum {self.min_budget(env)} for {type(self).__name__}")
        self._env = env
        self._rng = np.random.default_rng(self.seed)
        self._budget = int(budget)
        self.samples_ = 0
        self._cycle = np.empty(0, dtype=np.int64)
        self.stats_ = ArmStats(len(env.contexts), env.n_prompts, env.n_max, env.n_objectives)
        self.reuse_ = self._resolve_reuse(env)
        alive = self._run()
        self.actions_ = self._choose(alive)
        self.estimates_ = self.stats_.table(self._report_arms(alive))
        return self

    def _resolve_reuse(self, env: Env) -> str:
        """The reuse estimator a fit uses (``reuse`` itself unless a subclass resolves it)."""
        return self.reuse

    def _run(self) -> np.ndarray | None:
        """Spend the budget; return the alive mask (C, P, K) or ``None``."""
        raise NotImplementedError

    @property
    def left(self) -> int:
        return self._budget - self.samples_

    def _next_queries(self, m: int) -> np.ndarray | None:
        n_q = self._env.n_queries
        if n_q is None:
            return None
        if self.queries == "iid":
            return self._rng.integers(0, n_q, size=m)
        while self._cycle.size < m:
            self._cycle = np.concatenate([self._cycle, self._rng.permutation(n_q)])
        out, self._cycle = self._cycle[:m], self._cycle[m:]
        return out

    def _pull(self, prompts: np.ndarray, n: int, queries: np.ndarray | None = None) -> None:
        """Pull every prompt in ``prompts`` once with ``n`` samples and record all k <= n."""
        prompts = np.asarray(prompts, dtype=np.int64)
        if prompts.size == 0:
            return
        cost = int(prompts.size * n)
        if cost > self.left:
            raise AssertionError("internal: pull would exceed the budget")
        pulls = self._env.pull_many(prompts, n, self._rng, queries)
        self.samples_ += cost
        self.stats_.record(self._env, pulls, self.reuse_)

    def _pull_crn(self, prompts: np.ndarray, n_each: np.ndarray, m: int | np.ndarray) -> None:
        """``m`` (or ``m[i]``) pulls of each prompt at its own scale; every prompt uses the first
        of the same queries (common random numbers)."""
        m_each = np.broadcast_to(np.asarray(m, dtype=np.int64), prompts.shape)
        queries = self._next_queries(int(m_each.max()))
        for n in np.unique(n_each):
            sel = (n_each == n) & (m_each > 0)
            reps = np.repeat(prompts[sel], m_each[sel])
            q = None if queries is None else np.concatenate([queries[:k] for k in m_each[sel]])
            self._pull(reps, int(n), q)

    # -- results --------------------------------------------------------------------------
    def _choose(self, alive: np.ndarray | None) -> np.ndarray:
        """Per context the best observed arm (among alive ones); ties go to the cheaper N."""
        mean = self.stats_.mean()
        if alive is not None:
            mean = np.where(alive, mean, np.nan)
        mean = np.where(np.isnan(mean), -np.inf, mean)
        n_ctx = mean.shape[0]
        # argmax over N-major order so that ties prefer the smaller N
        by_n = mean.transpose(0, 2, 1).reshape(n_ctx, -1)
        idx = by_n.argmax(axis=1)
        n_prompts = mean.shape[1]
        return np.column_stack([idx % n_prompts, idx // n_prompts + 1])

    def _report_arms(self, alive: np.ndarray | None) -> np.ndarray:
        mean = np.where(np.isnan(self.stats_.mean()), -np.inf, self.stats_.mean())
        if alive is not None:
            mask = alive.any(axis=0) & (self.stats_.count > 0)
        else:
            n_ctx = mean.shape[0]
            flat = mean.reshape(n_ctx, -1)
            top = np.argsort(-flat, axis=1)[:, : self.top_report]
            mask = np.zeros(flat.shape[1], dtype=bool)
            mask[top.ravel()] = True
            mask = mask.reshape(mean.shape[1:]) & (self.stats_.count > 0)
        p, k = np.nonzero(mask)
        return np.column_stack([p, k + 1])
