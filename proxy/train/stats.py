"""Shared per-arm statistics (numpy arrays) and the estimate table learners report.

For arm (p, k) in context c, after ``n`` observations with utility sum ``S`` and squared sum
``Q``: mean ``S/n``, variance ``Q/n - (S/n)^2``, a normal-approximation interval
``mean +- z * sqrt(var / n)`` (``inf`` half-width below two observations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proxy.train.env import Observation

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

    def add(self, prompts: np.ndarray, obs: Observation) -> None:
        k = obs.count.shape[1]
        np.add.at(self.util[:, :, :k], (slice(None), prompts), obs.util)
        np.add.at(self.util_sq[:, :, :k], (slice(None), prompts), obs.util_sq)
        np.add.at(self.objectives[:, :, :k], (slice(None), prompts), obs.objectives)
        np.add.at(self.cost[:, :k], prompts, obs.cost)
        np.add.at(self.count[:, :k], prompts, obs.count)

    def mean(self) -> np.ndarray:
        """Mean utility (C, P, K); ``nan`` where unobserved."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.util / self.count[None]

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
