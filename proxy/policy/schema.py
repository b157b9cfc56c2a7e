"""A policy file as frozen objects: provenance, prompt candidates, contexts with their action and
the per-arm estimates behind it, a fallback action and per-task classifier artefacts.

Units. An arm's objective ``means`` are on the scorers' scale (``[0, 1]`` for built-in scorers;
accuracy is a rate). Its ``cost`` is the expected cost of *one request* served with that arm
(all N samples, prompt rewrite included), in **cost units**: one unit is ``config.cost_unit_usd``
dollars (a cent in the shipped config). So the utility of an arm under weights ``w`` is

    U(arm; w) = sum_{o in objectives} w_o * mean_o(arm)  -  w_cost * cost(arm)

with objectives absent from ``means`` counting 0. The budget in :class:`Provenance` is in
samples, tokens and US dollars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.config import COST, Action, PromptConfig

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMAS",
    "UTILITY",
    "ArmEstimate",
    "Budget",
    "Context",
    "Interval",
    "Policy",
    "Provenance",
    "arm_key",
    "utility",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = (1,)
UTILITY = "utility"  # the ci key for a confidence interval on the utility itself


def utility(means: Mapping[str, float], cost: float, weights: Mapping[str, float]) -> float:
    """``sum_o w_o * mean_o - w_cost * cost`` (objectives missing from ``means`` count 0)."""
    total = 0.0
    for objective, weight in weights.items():
        if objective == COST:
            total -= weight * cost
        else:
            total += weight * means.get(objective, 0.0)
    return total


def arm_key(action: Action) -> tuple[str, int, str, str | None]:
    """The identity of an arm: (prompt, N, aggregator, scorer)."""
    return (action.prompt, action.n, action.aggregator, action.scorer)


@dataclass(frozen=True, slots=True)
class Budget:
    """What training spent: samples drawn, tokens (prompt + completion) and US dollars."""

    samples: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Provenance:
    """How the policy was made. ``params`` holds the algorithm's own parameters (scalars/lists)."""

    algorithm: str
    params: Mapping[str, Any] = field(default_factory=dict)
    budget: Budget = Budget()
    datasets: tuple[str, ...] = ()
    upstream_model: str | None = None
    seed: int | None = None
    date: str | None = None
    project_version: str | None = None
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval ``[low, high]``."""

    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ArmEstimate:
    """Training's estimate for one arm (prompt, N, aggregator, scorer).

    ``means``: objective -> estimated mean; ``cost``: expected cost per request in cost units;
    ``observations``: how many pulls (or reused sub-samples) the means rest on; ``ci``: confidence
    intervals keyed by objective, ``cost`` or ``utility`` (the latter under the context's weights).
    """

    prompt: str
    n: int
    aggregator: str
    scorer: str | None
    means: Mapping[str, float]
    cost: float
    observations: int
    ci: Mapping[str, Interval] = field(default_factory=dict)

    @property
    def action(self) -> Action:
        return Action(prompt=self.prompt, n=self.n, aggregator=self.aggregator, scorer=self.scorer)

    def utility(self, weights: Mapping[str, float]) -> float:
        return utility(self.means, self.cost, weights)


@dataclass(frozen=True, slots=True)
class Context:
    """One trained context: a task under one preference profile, its action and the estimates."""

    task: str
    profile: str
    weights: Mapping[str, float]
    action: Action
    estimates: tuple[ArmEstimate, ...] = ()

    def estimate(self, action: Action) -> ArmEstimate | None:
        key = arm_key(action)
        return next((e for e in self.estimates if arm_key(e.action) == key), None)


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy file.

    ``prompts``: the candidate prompt ids (config's library or ``inline_prompts``);
    ``classifiers``: task -> classifier artefact path (resolved against the file's directory);
    ``source``/``sha256``: where it was loaded from and the hash of the bytes (``None`` when built
    in memory).
    """

    id: str
    version: str
    provenance: Provenance
    prompts: tuple[str, ...]
    contexts: tuple[Context, ...]
    fallback: Action
    inline_prompts: Mapping[str, PromptConfig] = field(default_factory=dict)
    classifiers: Mapping[str, Path] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION
    source: Path | None = None
    sha256: str | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks with at least one context, in file order."""
        return tuple(dict.fromkeys(c.task for c in self.contexts))

    def contexts_for(self, task: str) -> tuple[Context, ...]:
        return tuple(c for c in self.contexts if c.task == task)
