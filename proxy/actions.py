"""The seam between the request pipeline and where actions come from (a policy, or config).

The pipeline asks an :class:`ActionSource` for the action of a context (task × the caller's
weights); :mod:`proxy.policy` implements it with trained policies, and
:class:`StaticActions` with each task's ``action`` from config (the fallback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from proxy.config import Action, Config

__all__ = ["ActionSource", "Selection", "StaticActions"]


@dataclass(frozen=True, slots=True)
class Selection:
    """An action and where it came from, reported in the response's ``iapo`` object."""

    action: Action
    policy_id: str
    policy_version: str
    rule: str  # e.g. "profile:balanced", "max-utility", "nearest-profile:frugal", "fallback"
    estimated_utility: float | None = None


class ActionSource(Protocol):
    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        """The action for ``task`` given the caller's weights (objectives and ``cost``); with
        ``max_n`` (the caller's bound on samples per choice), preferably one within it (a
        source that cannot choose within a bound may ignore it: the service clamps N)."""
        ...


class StaticActions:
    """Each task's configured ``action`` (or ``plain`` prompt, N=1) regardless of weights."""

    def __init__(self, config: Config) -> None:
        self._actions: dict[str, Action] = {}
        for task in config.tasks:
            default = Action(prompt="plain" if "plain" in config.prompts else next(iter(config.prompts)),
                             n=1, aggregator=task.aggregator, scorer=task.scorer)
            self._actions[task.name] = task.action or default

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        action = self._actions.get(task) or next(iter(self._actions.values()))
        return Selection(action=action, policy_id="config", policy_version="static", rule="fallback")
