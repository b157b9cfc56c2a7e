"""Shared per-arm statistics (numpy arrays) and the estimate table learners report.

For arm (p, k) in context c, after ``n`` observations with utility sum ``S`` and squared sum
``Q``: mean ``S/n``, variance ``Q/n - (S/n)^2``, a normal-approximation interval
``mean +- z * sqrt(var / n)`` (``inf`` half-width below two observations).

The chained (difference) estimate compares scales on the pulls that observed both:
``U(p, 1)`` is the plain mean, ``U(p, k) = U(p, k-1) + mean of (u_k - u_{k-1})`` over the pulls
that observed ``k`` (``u`` a pull's mean utility at that scale). Large scales, seen by fewer
pulls, are anchored on the small scales' larger query set instead of being estimated on their
own queries only: the difference of two scales of one prompt has far less variance than either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proxy.train.env import Env, Observation, Pulls

__all__ = ["ArmStats", "ArmTable"]


@dataclass(frozen=True)
class ArmTable:
    """Estimates for a set of arms: ``arms`` (A, 2) = (prompt, N), N 1-based.

    ``utility``, ``ci_low``, ``ci_high`` (C, A); ``objectives`` (C, A, D) estimated mean of each
    objective of the aggregated answer (credit for majority voting); ``cost`` (A,) mean total
    cost of the N samples; ``n_obs`` (A,).
    """

    arms: np.ndarray
    utility: np.ndarray
    objectives: np.ndarray
    cost: np.ndarray
    n_obs: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


class ArmStats:
    """Running sums over (context, prompt, scale) fed by :class:`Observation` s."""

    def __init__(self, n_contexts: int, n_prompts: int, n_max: int, n_objectives: int) -> None:
        self.util = np.zeros((n_contexts, n_prompts, n_max))
        self.util_sq = np.zeros((n_contexts, n_prompts, n_max))
        self.objectives = np.zeros((n_contexts, n_prompts, n_max, n_objectives))
        self.cost = np.zeros((n_prompts, n_max))
        self.count = np.zeros((n_prompts, n_max))
        self.step = np.zeros((n_contexts, n_prompts, n_max))  # sum of u_k - u_{k-1} per pull
        self.pulls = np.zeros((n_prompts, n_max))  # pulls that observed each scale

    def record(self, env: Env, pulls: Pulls, reuse: str) -> None:
        """Add what ``pulls`` say about every scale up to their ``n`` (``env.observe``)."""
        self.add(pulls.prompts, env.observe(pulls, pulls.n, reuse))  # type: ignore[arg-type]

    def add(self, prompts: np.ndarray, obs: Observation) -> None:
        k = obs.count.shape[1]
        np.add.at(self.util[:, :, :k], (slice(None), prompts), obs.util)
        np.add.at(self.util_sq[:, :, :k], (slice(None), prompts), obs.util_sq)
        np.add.at(self.objectives[:, :, :k], (slice(None), prompts), obs.objectives)
        np.add.at(self.cost[:, :k], prompts, obs.cost)
        np.add.at(self.count[:, :k], prompts, obs.count)
        per_pull = obs.util / obs.count[None]
        np.add.at(self.step[:, :, 1:k], (slice(None), prompts), per_pull[:, :, 1:] - per_pull[:, :, :-1])
        np.add.at(self.pulls[:, :k], prompts, 1.0)

    def mean(self) -> np.ndarray:
        """Mean utility (C, P, K); ``nan`` where unobserved."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.util / self.count[None]

    def chained_mean(self) -> np.ndarray:
        """Chained estimate of the mean utility (C, P, K); ``nan`` from the first unobserved k."""
        with np.errstate(invalid="ignore", divide="ignore"):
            first = self.util[:, :, :1] / self.count[None, :, :1]
            steps = self.step[:, :, 1:] / self.pulls[None, :, 1:]
        return np.cumsum(np.concatenate([first, steps], axis=2), axis=2)

    def half_width(self, z: float = 1.96) -> np.ndarray:
        n = self.count[None]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.util / n
            var = np.maximum(self.util_sq / n - mean**2, 0.0)
            hw = z * np.sqrt(var / np.maximum(n - 1, 1))
        return np.where(n >= 2, hw, np.inf)

    def table(self, arms: np.ndarray) -> ArmTable:
        p, k = arms[:, 0], arms[:, 1] - 1
        n = self.count[p, k]
        with np.errstate(invalid="ignore", divide="ignore"):
            util = self.util[:, p, k] / n
            obj = self.objectives[:, p, k] / n[None, :, None]
            cost = self.cost[p, k] / n
        hw = self.half_width()[:, p, k]
        return ArmTable(arms.copy(), util, obj, cost, n, util - hw, util + hw)
