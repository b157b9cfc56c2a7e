"""Turn fitted learners on live environments into a :class:`proxy.policy.schema.Policy`.

Per task and profile: the learner's chosen arm as the action and, as estimates, every arm it
reports (PSST: the arms still alive in some context) that has observations, with ``means``
``{accuracy}``, ``cost`` per request in cost units, ``observations`` and intervals on the
utility under the profile's weights and on the accuracy. The action is always one of them, except
when a learner chose an arm it never observed (``triple-random-n``): that context has none.
Writing the file is :func:`proxy.policy.write.write_policy` (atomic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from proxy.config import Action, Config
from proxy.policy.schema import (
    ArmEstimate,
    Budget,
    Context,
    Interval,
    Policy,
    Provenance,
)
from proxy.train.base import Learner
from proxy.train.live import LiveMajorityEnv

__all__ = ["TrainedTask", "budget_of", "build_policy", "default_prompt", "task_contexts"]

ACCURACY = "accuracy"


@dataclass(frozen=True)
class TrainedTask:
    """One task's fitted learner, its environment and the profiles (name, weights) it served."""

    learner: Learner
    env: LiveMajorityEnv
    profiles: tuple[tuple[str, Mapping[str, float]], ...]


def _finite_interval(low: float, high: float) -> Interval | None:
    if math.isfinite(low) and math.isfinite(high) and low <= high:
        return Interval(round(float(low), 6), round(float(high), 6))
    return None


def task_contexts(trained: TrainedTask) -> list[Context]:
    """The policy contexts of one trained task (module docstring)."""
    learner, env = trained.learner, trained.env
    # the reported arms plus every chosen one (a learner may choose outside its report on ties)
    arms = list(dict.fromkeys([(int(p), int(n)) for p, n in learner.estimates_.arms]
                              + [(int(p), int(n)) for p, n in learner.actions_]))
    table = learner.stats_.table(np.array(arms, dtype=np.int64).reshape(-1, 2))
    out = []
    for c, (profile, weights) in enumerate(trained.profiles):
        chosen = (int(learner.actions_[c][0]), int(learner.actions_[c][1]))
        estimates = []
        for a, (p, n) in enumerate(arms):
            acc, cost = float(table.objectives[c, a, 0]), float(table.cost[a])
            if not (math.isfinite(acc) and math.isfinite(cost)) or table.n_obs[a] <= 0:
                continue
            ci: dict[str, Interval] = {}
            iv = _finite_interval(table.ci_low[c, a], table.ci_high[c, a])
            if iv is not None:
                ci["utility"] = iv
            acc_iv = env.accuracy_interval(p, n)
            if acc_iv is not None:
                ci[ACCURACY] = Interval(round(float(acc_iv[0]), 6), round(float(acc_iv[1]), 6))
            estimates.append(ArmEstimate(
                prompt=env.prompts[p].id, n=n, aggregator="majority", scorer=None,
                means=MappingProxyType({ACCURACY: round(acc, 6)}), cost=round(max(cost, 0.0), 8),
                observations=int(table.n_obs[a]), ci=MappingProxyType(ci)))
        prompt_id = env.prompts[chosen[0]].id
        if (prompt_id, chosen[1]) not in {(e.prompt, e.n) for e in estimates}:
            estimates = []  # an arm chosen unobserved (triple-random-n): no estimates to stand on
        out.append(Context(task=env.task_set.task, profile=profile, weights=MappingProxyType(dict(weights)),
                           action=Action(prompt=prompt_id, n=chosen[1], aggregator="majority"),
                           estimates=tuple(estimates)))
    return out


def default_prompt(config: Config) -> str:
    """The library prompt that changes nothing (``plain`` in the shipped config), else the first."""
    for pid, p in config.prompts.items():
        if not (p.system or p.prefix or p.suffix or p.template or p.examples or p.rewrite):
            return pid
    return next(iter(config.prompts))


def build_policy(trained: Sequence[TrainedTask], config: Config, *, policy_id: str, version: str,
                 provenance: Provenance, keep: Policy | None = None) -> Policy:
    """A policy with the trained tasks' contexts; ``keep`` contributes its contexts for every
    other task (with their prompts) and its fallback."""
    contexts = [ctx for t in trained for ctx in task_contexts(t)]
    done = {t.env.task_set.task for t in trained}
    inline = {}
    if keep is not None:
        contexts += [c for c in keep.contexts if c.task not in done]
        inline = {k: v for k, v in keep.inline_prompts.items()}
        fallback = keep.fallback
    else:
        fallback = Action(prompt=default_prompt(config), n=1, aggregator="majority")
    used: list[str] = []
    for c in contexts:
        used.append(c.action.prompt)
        used.extend(e.prompt for e in c.estimates)
    prompts = tuple(dict.fromkeys(used))
    return Policy(id=policy_id, version=version, provenance=provenance, prompts=prompts,
                  contexts=tuple(contexts), fallback=fallback,
                  inline_prompts=MappingProxyType({k: v for k, v in inline.items() if k in prompts}),
                  classifiers=keep.classifiers if keep is not None else MappingProxyType({}))


def budget_of(samples: int, tokens: int, cost_usd: float) -> Budget:
    return Budget(samples=int(samples), tokens=int(tokens), cost_usd=round(float(cost_usd), 6))
