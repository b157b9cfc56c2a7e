"""Selection for any preference vector: max-utility for majority voting, nearest profile for
Best-of-N, exact profile matches, fallback; and the policy set's routing by task."""

from __future__ import annotations

from types import MappingProxyType as M

import numpy as np
import pytest

from proxy.actions import StaticActions
from proxy.config import Action, Config
from proxy.policy.load import PolicyError, load_policy, parse_policy
from proxy.policy.policyset import build_policy_set
from proxy.policy.schema import ArmEstimate, Context, Policy, Provenance
from proxy.policy.select import cosine_distance, pooled_arms, select_action
from tests.policy.conftest import REPO, base_policy

OBJ = ("accuracy", "helpfulness", "brevity", "cost")


def _random_majority_policy(rng: np.random.Generator, n_contexts: int = 3, n_arms: int = 12) -> Policy:
    contexts = []
    for c in range(n_contexts):
        arms = []
        for a in range(n_arms):
            prompt = f"p{rng.integers(0, 4)}"
            n = int(rng.integers(1, 33))
            if any(x.prompt == prompt and x.n == n for x in arms):
                continue
            arms.append(ArmEstimate(prompt=prompt, n=n, aggregator="majority", scorer=None,
                                    means=M({"accuracy": float(rng.uniform()), "helpfulness": float(rng.uniform()),
                                             "brevity": float(rng.uniform())}),
                                    cost=float(rng.uniform(0, 2)), observations=int(rng.integers(1, 500))))
        weights = M({k: float(v) for k, v in zip(OBJ, rng.uniform(0.1, 1, 4))})
        contexts.append(Context(task="math", profile=f"prof{c}", weights=weights, action=arms[0].action,
                                estimates=tuple(arms)))
    return Policy(id="r", version="1", provenance=Provenance(algorithm="test"), prompts=("p0",),
                  contexts=tuple(contexts), fallback=Action("plain"))


def test_majority_choice_maximises_callers_utility_for_random_weights() -> None:
    rng = np.random.default_rng(12345)
    for trial in range(200):
        policy = _random_majority_policy(rng)
        raw = rng.exponential(1.0, 4) * (rng.uniform(size=4) > 0.2)  # some weights zero
        if not raw.any():
            raw[0] = 1.0
        weights = dict(zip(OBJ, map(float, raw)))
        sel = select_action(policy, "math", weights)
        assert sel.rule == "max-utility", trial
        arms = pooled_arms(policy.contexts)
        utilities = [a.means["accuracy"] * weights["accuracy"] + a.means["helpfulness"] * weights["helpfulness"]
                     + a.means["brevity"] * weights["brevity"] - weights["cost"] * a.cost for a in arms]
        chosen = next(a for a in arms if a.action == sel.action)
        assert chosen.utility(weights) == pytest.approx(max(utilities), abs=1e-12)
        assert sel.estimated_utility == pytest.approx(max(utilities), abs=1e-12)
        assert (sel.policy_id, sel.policy_version) == ("r", "1")


def test_max_utility_on_shipped_default(repo_config: Config) -> None:
    policy = load_policy(REPO / "policies" / "default.yaml", repo_config)
    rng = np.random.default_rng(7)
    for _ in range(100):
        weights = dict(zip(OBJ, map(float, rng.dirichlet(np.ones(4)))))
        for task in ("math", "multiple_choice"):
            sel = select_action(policy, task, weights)
            best = max(e.utility(weights) for c in policy.contexts_for(task) for e in c.estimates)
            assert sel.rule == "max-utility"
            assert sel.estimated_utility == pytest.approx(best)
    # cost matters: a caller who minds cost a lot gets fewer samples than one who does not
    cheap = select_action(policy, "math", {"accuracy": 1.0, "cost": 5.0})
    rich = select_action(policy, "math", {"accuracy": 1.0, "cost": 0.0})
    assert cheap.action.n < rich.action.n


def test_profile_weights_give_that_profiles_action(repo_config: Config) -> None:
    policy = load_policy(REPO / "policies" / "default.yaml", repo_config)
    for c in policy.contexts:
        sel = select_action(policy, c.task, dict(c.weights))
        assert (sel.rule, sel.action) == (f"profile:{c.profile}", c.action)
        doubled = {k: 2 * v for k, v in c.weights.items()}  # same direction, same profile
        assert select_action(policy, c.task, doubled).rule == f"profile:{c.profile}"


def test_best_of_n_uses_nearest_profile_by_cosine(repo_config: Config) -> None:
    policy = load_policy(REPO / "policies" / "default.yaml", repo_config)
    frugalish = {"accuracy": 1.0, "helpfulness": 0.3, "brevity": 0.3, "cost": 0.9}
    sel = select_action(policy, "summarize", frugalish)
    assert sel.rule == "nearest-profile:frugal"
    frugal = next(c for c in policy.contexts_for("summarize") if c.profile == "frugal")
    assert sel.action == frugal.action
    assert select_action(policy, "general", {"accuracy": 1.0, "helpfulness": 0.9}).rule == "nearest-profile:quality"


def test_a_sample_bound_gets_the_best_stored_arm_within_it(repo_config: Config) -> None:
    policy = load_policy(REPO / "policies" / "default.yaml", repo_config)
    rng = np.random.default_rng(3)
    for _ in range(50):  # max-utility: the arg-max over the arms that fit
        weights = dict(zip(OBJ, map(float, rng.dirichlet(np.ones(4)))))
        free = select_action(policy, "math", weights)
        for cap in sorted({1, 4, 10, free.action.n - 1, free.action.n}):
            sel = select_action(policy, "math", weights, max_n=cap)
            fits = [e for c in policy.contexts_for("math") for e in c.estimates if e.n <= cap]
            if free.action.n <= cap or not fits:  # nothing to change, or no arm to change to
                assert sel == free
                continue
            assert sel.action.n <= cap and sel.rule == f"max-utility (n<={cap})"
            assert sel.estimated_utility == pytest.approx(max(e.utility(weights) for e in fits))
    for c in policy.contexts:  # a profile match: that context's best arm within the bound
        cap = c.action.n - 1
        fits = [e for e in c.estimates if e.n <= cap]
        if not fits:
            continue
        sel = select_action(policy, c.task, dict(c.weights), max_n=cap)
        by = c.weights if c.action.aggregator == "best_of_n" else dict(c.weights)
        best = max(fits, key=lambda e: e.utility(by))
        assert (sel.action, sel.rule) == (best.action, f"profile:{c.profile} (n<={cap})")
        assert select_action(policy, c.task, dict(c.weights), max_n=c.action.n).action == c.action


def test_a_bound_no_stored_arm_fits_keeps_the_action_for_the_service_to_clamp() -> None:
    arm = ArmEstimate(prompt="cot", n=8, aggregator="majority", scorer=None,
                      means=M({"accuracy": 0.9}), cost=1.0, observations=10)
    policy = Policy(id="x", version="1", provenance=Provenance(algorithm="test"), prompts=("cot",),
                    contexts=(Context(task="math", profile="p", weights=M({"accuracy": 1.0}),
                                      action=arm.action, estimates=(arm,)),),
                    fallback=Action("plain"))
    sel = select_action(policy, "math", {"accuracy": 1.0}, max_n=2)
    assert (sel.action.n, sel.rule) == (8, "profile:p")


def test_cosine_distance_is_scale_free_and_counts_missing_as_zero() -> None:
    assert cosine_distance({"a": 1, "b": 1}, {"a": 5, "b": 5}) == pytest.approx(0.0)
    assert cosine_distance({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert cosine_distance({"a": 1, "cost": 0}, {"a": 1}) == pytest.approx(0.0)
    assert cosine_distance({"a": 3, "b": 4}, {"a": 4, "b": 3}) == pytest.approx(1 - 24 / 25)
    assert cosine_distance({}, {"a": 1}) == 1.0
    # huge weights (a caller's 1e308s) are a direction like any other, not an overflow
    assert cosine_distance({"a": 1e308, "b": 1e308}, {"a": 1, "b": 1}) == pytest.approx(0.0)


def test_task_without_context_gets_fallback(repo_config: Config) -> None:
    policy = parse_policy(base_policy(), repo_config)
    sel = select_action(policy, "summarize", {"accuracy": 1.0})
    assert (sel.rule, sel.action) == ("fallback", Action("plain", 1, "best_of_n", "builtin"))


def test_policy_set_routes_by_task_and_rejects_conflicts(repo_config: Config) -> None:
    a = parse_policy(base_policy(), repo_config)  # math, general
    doc = base_policy("v2")
    doc["id"] = "other"
    doc["contexts"] = [dict(doc["contexts"][0], task="multiple_choice",
                            action={"prompt": "cot", "n": 2, "aggregator": "majority"}, estimates=[])]
    b = parse_policy(doc, repo_config)
    pset = build_policy_set([a, b], repo_config)
    assert pset.select("multiple_choice", {"accuracy": 1}).policy_id == "other"
    assert pset.select("math", {"accuracy": 1}).policy_id == "test"
    assert pset.select("summarize", {"accuracy": 1}).rule == "fallback"
    assert pset.prompt("short") is not None and pset.prompt("cot") is not None
    with pytest.raises(PolicyError, match="task 'math' is also covered"):
        build_policy_set([a, parse_policy(base_policy(), repo_config)], repo_config)
    empty = build_policy_set([], repo_config)
    assert empty.select("math", {"accuracy": 1}) == StaticActions(repo_config).select("math", {})


def test_the_fallback_of_an_uncovered_task_takes_that_tasks_aggregator(repo_config: Config) -> None:
    doc = base_policy()  # covers math and general
    doc["fallback"] = {"prompt": "plain", "n": 1, "aggregator": "majority"}  # as iapo train writes
    pset = build_policy_set([parse_policy(doc, repo_config)], repo_config)
    chat = pset.select("summarize", {"accuracy": 1})  # a Best-of-N task no context covers
    assert chat.rule == "fallback" and chat.action == Action("plain", 1, "best_of_n", "judge")
    vote = pset.select("multiple_choice", {"accuracy": 1})  # a majority task: as written
    assert vote.action == Action("plain", 1, "majority", None)


def test_policy_set_selection_is_remembered_but_bounded(repo_config: Config) -> None:
    policy = load_policy(REPO / "policies" / "default.yaml", repo_config)
    policies = build_policy_set([policy], repo_config)
    rng = np.random.default_rng(3)
    for _ in range(5000):  # callers sending ever new weights
        weights = dict(zip(OBJ, map(float, rng.dirichlet(np.ones(4)))))
        assert policies.select("math", weights) == select_action(policy, "math", weights)
        assert policies.select("math", weights) is policies.select("math", weights)  # remembered
    assert 0 < len(policies._selections) <= 4096
