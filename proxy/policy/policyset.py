"""The immutable set of loaded policies the proxy serves from: every configured file, by task.

One policy may cover several tasks; two files covering the same task, two files with the same
``id``, or the same inline prompt id defined differently are rejected. A task no policy covers gets
the first policy's fallback action; with no policy at all, the config's static actions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from proxy.actions import Selection, StaticActions
from proxy.config import Action, Config, PromptConfig
from proxy.policy.load import PolicyError, parse_policy_bytes
from proxy.policy.schema import Policy
from proxy.policy.select import select_action

__all__ = ["PolicySet", "build_policy_set", "load_policy_set", "read_files", "parse_policy_files"]

_SELECTION_CACHE = 4096  # distinct (task, weights) selections remembered per policy set


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Policies keyed by task; implements :class:`proxy.actions.ActionSource`.

    Grab it once per request (``store.current``) so the request finishes with the set it started
    with, whatever reloads happen meanwhile.
    """

    config: Config
    policies: tuple[Policy, ...] = ()
    loaded_at: float = 0.0  # unix time
    by_task: Mapping[str, Policy] = field(default_factory=dict)
    prompts: Mapping[str, PromptConfig] = field(default_factory=dict)
    _selections: dict[tuple[str, tuple[tuple[str, float], ...], int | None], Selection] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def policy_for(self, task: str) -> Policy | None:
        return self.by_task.get(task)

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        key = (task, tuple(sorted(weights.items())), max_n)
        hit = self._selections.get(key)
        if hit is None:  # the set never changes: a (task, weights) pair always selects the same
            hit = self._select(task, weights, max_n)
            if len(self._selections) >= _SELECTION_CACHE:
                self._selections.clear()  # callers sending ever new weights: start over
            self._selections[key] = hit
        return hit

    def _select(self, task: str, weights: Mapping[str, float], max_n: int | None) -> Selection:
        policy = self.by_task.get(task)
        if policy is not None:
            return select_action(policy, task, weights, max_n)
        if self.policies:
            first = self.policies[0]
            return Selection(action=self._fitted(first.fallback, task), policy_id=first.id,
                             policy_version=first.version, rule="fallback")
        return StaticActions(self.config).select(task, weights)

    def _fitted(self, action: Action, task: str) -> Action:
        """``action`` with ``task``'s own aggregator (and scorer) where it names another: one
        policy's fallback serves tasks aggregated both ways (a trained math policy's majority
        fallback must not vote on chat)."""
        cfg = self.config.task(task)
        if cfg is None or cfg.aggregator == action.aggregator:
            return action
        scorer = cfg.scorer if cfg.aggregator == "best_of_n" else None
        return replace(action, aggregator=cfg.aggregator, scorer=scorer)

    def prompt(self, prompt_id: str) -> PromptConfig | None:
        """A prompt by id: the config's library plus the policies' inline prompts."""
        return self.prompts.get(prompt_id)

    def classifier(self, task: str) -> Path | None:
        policy = self.by_task.get(task)
        return None if policy is None else policy.classifiers.get(task)

    @property
    def hashes(self) -> tuple[str | None, ...]:
        return tuple(p.sha256 for p in self.policies)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description (for ``GET /admin/policies`` and reload answers)."""
        return {
            "loaded_at": self.loaded_at,
            "policies": [{
                "id": p.id, "version": p.version, "schema": p.schema,
                "path": str(p.source) if p.source else None, "sha256": p.sha256,
                "algorithm": p.provenance.algorithm, "date": p.provenance.date,
                "tasks": list(p.tasks),
                "contexts": [{"task": c.task, "profile": c.profile, "weights": dict(c.weights),
                              "action": {"prompt": c.action.prompt, "n": c.action.n,
                                         "aggregator": c.action.aggregator,
                                         "scorer": c.action.scorer}} for c in p.contexts],
                "fallback": {"prompt": p.fallback.prompt, "n": p.fallback.n,
                             "aggregator": p.fallback.aggregator, "scorer": p.fallback.scorer},
            } for p in self.policies],
        }


def build_policy_set(policies: Sequence[Policy], config: Config,
                     loaded_at: float | None = None) -> PolicySet:
    """Combine validated policies; raises :class:`PolicyError` on conflicts between them."""
    problems: list[str] = []
    by_task: dict[str, Policy] = {}
    ids: dict[str, Policy] = {}
    prompts: dict[str, PromptConfig] = dict(config.prompts)
    owner: dict[str, Policy] = {}
    for p in policies:
        where = str(p.source or p.id)
        if p.id in ids:
            problems.append(f"{where}: id: '{p.id}' is also the id of {ids[p.id].source or 'another policy'}")
        ids.setdefault(p.id, p)
        for task in p.tasks:
            if task in by_task:
                problems.append(f"{where}: contexts: task '{task}' is also covered by "
                                f"{by_task[task].source or by_task[task].id}")
            else:
                by_task[task] = p
        for pid, prompt in p.inline_prompts.items():
            if pid in owner and prompts[pid] != prompt:
                problems.append(f"{where}: prompts: inline prompt '{pid}' differs from the one in "
                                f"{owner[pid].source or owner[pid].id}")
            else:
                prompts[pid] = prompt
                owner.setdefault(pid, p)
    if problems:
        raise PolicyError(problems, "policies")
    return PolicySet(config=config, policies=tuple(policies),
                     loaded_at=time.time() if loaded_at is None else loaded_at,
                     by_task=MappingProxyType(by_task), prompts=MappingProxyType(prompts))


def read_files(paths: Sequence[Path]) -> list[tuple[Path, bytes | None]]:
    """The bytes of each file, ``None`` for one that cannot be read (blocking: call off-loop)."""
    out: list[tuple[Path, bytes | None]] = []
    for path in paths:
        try:
            out.append((path, path.read_bytes()))
        except OSError:
            out.append((path, None))
    return out


def parse_policy_files(files: Sequence[tuple[Path, bytes | None]], config: Config) -> PolicySet:
    """Validate every file, then combine; all problems, each prefixed by its file, in one error."""
    problems: list[str] = []
    policies: list[Policy] = []
    for path, raw in files:
        if raw is None:
            problems.append(f"{path}: <root>: cannot read file")
            continue
        try:
            policies.append(parse_policy_bytes(raw, config, path))
        except PolicyError as exc:
            problems.extend(f"{path}: {line}" for line in exc.problems)
    if problems:
        raise PolicyError(problems, "policies")
    return build_policy_set(policies, config)


def load_policy_set(paths: Sequence[Path], config: Config) -> PolicySet:
    """Read and validate every file of ``paths`` into one set (blocking)."""
    return parse_policy_files(read_files(paths), config)
