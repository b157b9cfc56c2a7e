"""Choose an action for any preference vector from a policy's stored estimates.

Rules, in order, for a task and the caller's weights ``w`` (objectives plus ``cost``):

1. ``fallback`` — the policy has no context for the task: its fallback action.
2. ``profile:NAME`` — ``w`` points the same way as a trained profile's weights (equal after
   L1 normalisation; a positive multiple changes no arg-max): that context's trained action.
3. ``max-utility`` — majority voting (every context and pooled arm of the task votes): an arm's
   accuracy and cost do not depend on the weights, so its utility
   ``U(arm; w) = sum_o w_o * mean_o - w_cost * cost`` is linear in ``w`` and can be evaluated for
   any ``w``. Take the arg-max over the task's stored arms, pooled over its contexts (an arm
   estimated in several contexts keeps the estimate with the most observations). Ties: lower
   cost, then smaller N, then file order.
4. ``nearest-profile:NAME`` — Best-of-N: which sample wins depends on the weights the scorer
   combines with, so an arm's means were measured *for* its profile and do not transfer linearly.
   Use the trained profile nearest to ``w`` by cosine distance between L1-normalised weight
   vectors over all objectives including ``cost``. Cosine distance is scale-free (only the
   direction of ``w`` matters to an arg-max) and, unlike a Euclidean distance, does not let one
   large weight swamp the rest; the L1 normalisation makes reported vectors comparable. Ties go
   to the earlier context in the file.

``max_n`` (an API key's ``max_samples`` per choice): an action with more samples is replaced by
the context's best stored arm with at most ``max_n`` (by utility under the caller's weights for
majority voting and a profile match, under the context's own for a nearest profile), and the
rule says so (``profile:balanced (n<=4)``); with no such arm it stays, and the service clamps
its N.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from proxy.actions import Selection
from proxy.config import Action
from proxy.policy.schema import ArmEstimate, Context, Policy, arm_key

__all__ = [
    "cosine_distance",
    "l1_normalise",
    "nearest_context",
    "pooled_arms",
    "same_direction",
    "select_action",
]

_EQ_TOL = 1e-9


def _axes(*weights: Mapping[str, float]) -> list[str]:
    return sorted({k for w in weights for k in w})


def l1_normalise(weights: Mapping[str, float], axes: Sequence[str]) -> list[float]:
    """The weights on ``axes`` (missing = 0) divided by their L1 norm (all zeros stay zeros)."""
    vec = [max(0.0, float(weights.get(a, 0.0))) for a in axes]
    top = max(vec, default=0.0)
    if top == 0:
        return vec
    vec = [v / top for v in vec]  # first into [0, 1]: the sum of huge weights would overflow
    total = sum(vec)
    return [v / total for v in vec]


def cosine_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """``1 - cos`` between the L1-normalised vectors; 1.0 when either is all zeros."""
    axes = _axes(a, b)
    va, vb = l1_normalise(a, axes), l1_normalise(b, axes)
    na, nb = math.sqrt(sum(x * x for x in va)), math.sqrt(sum(x * x for x in vb))
    if na == 0 or nb == 0:
        return 1.0
    return 1.0 - sum(x * y for x, y in zip(va, vb)) / (na * nb)


def same_direction(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    axes = _axes(a, b)
    va, vb = l1_normalise(a, axes), l1_normalise(b, axes)
    return any(va) and all(abs(x - y) <= _EQ_TOL for x, y in zip(va, vb))


def pooled_arms(contexts: Sequence[Context]) -> list[ArmEstimate]:
    """Every arm estimated in ``contexts``, once, keeping the estimate with most observations."""
    best: dict[tuple[str, int, str, str | None], ArmEstimate] = {}
    for c in contexts:
        for est in c.estimates:
            key = arm_key(est.action)
            if key not in best or est.observations > best[key].observations:
                best[key] = est
    return list(best.values())


def nearest_context(contexts: Sequence[Context], weights: Mapping[str, float]) -> Context:
    return min(contexts, key=lambda c: cosine_distance(c.weights, weights))


def _utility_of(context: Context, weights: Mapping[str, float]) -> float | None:
    est = context.estimate(context.action)
    return None if est is None else est.utility(weights)


def _best(arms: Sequence[ArmEstimate], weights: Mapping[str, float]) -> ArmEstimate | None:
    """The arm of highest utility; ties: lower cost, then smaller N, then order."""
    order = {id(a): i for i, a in enumerate(arms)}
    return min(arms, key=lambda a: (-a.utility(weights), a.cost, a.n, order[id(a)]), default=None)


def select_action(policy: Policy, task: str, weights: Mapping[str, float],
                  max_n: int | None = None) -> Selection:
    """The action ``policy`` gives ``task`` under ``weights`` and the rule that chose it; with
    ``max_n``, one of at most that many samples where the policy has one (module docstring)."""

    def pick(action: Action, rule: str, utility: float | None) -> Selection:
        return Selection(action=action, policy_id=policy.id, policy_version=policy.version,
                         rule=rule, estimated_utility=utility)

    def within(chosen: Selection, arms: Sequence[ArmEstimate],
               by: Mapping[str, float]) -> Selection:
        if max_n is None or chosen.action.n <= max_n:
            return chosen
        best = _best([a for a in arms if a.n <= max_n], by)
        if best is None:
            return chosen
        return pick(best.action, f"{chosen.rule} (n<={max_n})", best.utility(weights))

    contexts = policy.contexts_for(task)
    if not contexts:
        return pick(policy.fallback, "fallback", None)
    for c in contexts:
        if same_direction(c.weights, weights):
            chosen = pick(c.action, f"profile:{c.profile}", _utility_of(c, weights))
            return within(chosen, c.estimates, weights)
    arms = pooled_arms(contexts)
    majority = (all(c.action.aggregator == "majority" for c in contexts)
                and arms and all(a.aggregator == "majority" for a in arms))
    if majority:
        best = _best(arms, weights)
        assert best is not None  # arms is not empty
        return within(pick(best.action, "max-utility", best.utility(weights)), arms, weights)
    near = nearest_context(contexts, weights)
    chosen = pick(near.action, f"nearest-profile:{near.profile}", _utility_of(near, weights))
    return within(chosen, near.estimates, near.weights)
