"""Learner interface, budget honesty, determinism, and PSST finding the best arm."""

from __future__ import annotations

import numpy as np
import pytest

from proxy.train.bon import make_synthetic_bon
from proxy.train.env import ReplayMajorityEnv
from proxy.train.errors import BudgetError, ParamError
from proxy.train.evaluate import exact_tables
from proxy.train.registry import LEARNERS, make_learner, parse_spec, split_specs

ALL = sorted(LEARNERS)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("budget", [3, 12, 37, 400])
def test_budget_is_never_exceeded(small_env: ReplayMajorityEnv, name: str, budget: int) -> None:
    learner = make_learner(name, seed=1)
    if budget < learner.min_budget(small_env):
        with pytest.raises(BudgetError):
            learner.fit(small_env, budget)
        return
    learner.fit(small_env, budget)
    assert 0 < learner.samples_ <= budget
    assert int(learner.stats_.count.sum()) > 0


@pytest.mark.parametrize("name", ALL)
def test_learned_attributes_and_determinism(small_env: ReplayMajorityEnv, name: str) -> None:
    a = make_learner(name, seed=7)
    assert not any(k.endswith("_") for k in vars(a))  # nothing learned before fit
    a.fit(small_env, 300)
    b = make_learner(name, seed=7).fit(small_env, 300)
    n_ctx = len(small_env.contexts)
    assert a.actions_.shape == (n_ctx, 2)
    assert (a.actions_[:, 0] < small_env.n_prompts).all()
    assert ((a.actions_[:, 1] >= 1) & (a.actions_[:, 1] <= small_env.n_max)).all()
    assert np.array_equal(a.actions_, b.actions_) and a.samples_ == b.samples_
    est = a.estimates_
    assert est.utility.shape == (n_ctx, len(est.arms)) == est.ci_low.shape
    assert (est.n_obs > 0).all()
    assert np.all(est.ci_low <= est.utility) and np.all(est.utility <= est.ci_high)


def test_psst_finds_the_best_arm_on_an_easy_table(easy_env: ReplayMajorityEnv) -> None:
    best = exact_tables(easy_env).train_oracle
    assert (best[:, 0] == 2).all()
    for seed in range(3):
        learner = make_learner("psst", seed=seed).fit(easy_env, 3000)
        assert (learner.actions_[:, 0] == 2).all()
        assert learner.samples_ <= 3000


def test_psst_is_not_fooled_by_deceptive_prompts() -> None:
    env = make_synthetic_bon(0)
    tables = exact_tables(env)
    oracle = tables.value(tables.train_oracle, "train").mean()
    psst = np.mean([tables.value(make_learner("psst", seed=s).fit(env, 3000).actions_, "train").mean() for s in range(4)])
    n1 = np.mean([tables.value(make_learner("decoupled", seed=s).fit(env, 3000).actions_, "train").mean() for s in range(4)])
    assert psst > n1 + 0.03
    assert oracle - psst < 0.03


def test_triple_n1_answers_with_one_sample(small_env: ReplayMajorityEnv) -> None:
    learner = make_learner("triple-n1", seed=0).fit(small_env, 200)
    assert (learner.actions_[:, 1] == 1).all()


def test_make_learner_specs_and_errors() -> None:
    assert parse_spec("psst-k:k=8,burn_in=0.3") == ("psst-k", {"k": 8, "burn_in": 0.3})
    assert make_learner("psst:reuse=blocks").reuse == "blocks"
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_learner("nope")
    with pytest.raises(ParamError, match=r"psst: unknown parameter 'bogus' \(known: revive, cap, reuse"):
        make_learner("psst", bogus=1)
    assert parse_spec("psst:revive=false") == ("psst", {"revive": False})
    assert make_learner("psst:revive=False").revive is False
    assert not make_learner("psst:revive=0").revive  # as in benchmarks/README's command
    assert all(cls.name == name for name, cls in LEARNERS.items())


@pytest.mark.parametrize(
    ("text", "specs"),
    [
        ("psst,psst-k:k=4,ucb", ["psst", "psst-k:k=4", "ucb"]),  # the --help example
        ("psst-k:k=4,burn_in=0.1,ucb:c=2", ["psst-k:k=4,burn_in=0.1", "ucb:c=2"]),
        (" psst , ucb ", ["psst", "ucb"]),
        ("psst-k:k=4,burn_in=0.1;psst", ["psst-k:k=4,burn_in=0.1", "psst"]),  # ';' as before
    ],
)
def test_split_specs(text: str, specs: list[str]) -> None:
    assert split_specs(text) == specs


@pytest.mark.parametrize(("text", "message"), [
    ("psst,k=4", "parameter 'k=4' does not follow a learner with parameters (write psst:k=4)"),
    ("k=4,psst", "(write NAME:k=4)"),
    ("psst-k:k=4;burn_in=0.1", "(write NAME:burn_in=0.1)"),
])
def test_split_specs_rejects_stray_parameters(text: str, message: str) -> None:
    with pytest.raises(ParamError) as err:
        split_specs(text)
    assert message in str(err.value)


@pytest.mark.parametrize(("spec", "message"), [
    ("psst-k:k=0", "psst-k: k must be an integer >= 1, got 0"),
    ("psst-k:k=-3", "psst-k: k must be an integer >= 1, got -3"),
    ("psst-k:k=abc", "psst-k: k must be an integer >= 1, got 'abc'"),
    ("psst-k:k=2.5", "psst-k: k must be an integer >= 1, got 2.5"),
    ("psst-k:burn_in=1", "psst-k: burn_in must be a fraction in (0, 1), got 1"),
    ("psst-k:k=1,k=2", "psst-k: parameter 'k' is given twice"),
    ("psst:reuse=bogus", "psst: reuse must be 'auto', 'pooled', 'subsets' or 'blocks', got 'bogus'"),
    ("psst:queries=all", "psst: queries must be 'cycle' or 'iid', got 'all'"),
    ("psst:cap=some", "psst: cap must be 'budget' or 'none', got 'some'"),
    ("psst:revive=maybe", "psst: revive must be true or false (or 1 or 0), got 'maybe'"),
    ("psst:revive=2", "psst: revive must be true or false (or 1 or 0), got 2"),
    ("psst:seed=-1", "psst: seed must be an integer >= 0, got -1"),
    ("psst:x=1", "psst: unknown parameter 'x'"),
    ("psst:x", "psst: bad parameter 'x'"),
    ("ucb:c=-1", "ucb: c must be a number >= 0, got -1"),
    ("ucb:c=nan", "ucb: c must be a number >= 0, got nan"),
    ("epsilon-greedy:epsilon=1.5", "epsilon-greedy: epsilon must be a probability in [0, 1], got 1.5"),
    ("softmax:tau=0", "softmax: tau must be a number > 0, got 0"),
    ("decoupled:share=0", "decoupled: share must be a fraction in (0, 1), got 0"),
    ("uniform:reuse=none", "uniform: reuse must be 'subsets' or 'blocks', got 'none'"),
])
def test_bad_parameters_fail_when_the_learner_is_made(spec: str, message: str) -> None:
    with pytest.raises(ParamError) as err:
        make_learner(spec)
    assert message in str(err.value)


def test_parameters_bounded_by_the_env_fail_before_any_pull(small_env: ReplayMajorityEnv) -> None:
    learner = make_learner("psst-k:k=5")  # small_env has 4 prompts
    with pytest.raises(ParamError, match=r"psst-k: k must be at most the number of prompts \(4\), got 5"):
        learner.validate(small_env)
    with pytest.raises(ParamError, match="at most the number of prompts"):
        learner.fit(small_env, 300)
    assert not hasattr(learner, "samples_")
    make_learner("psst-k:k=4").fit(small_env, 300)  # k = every prompt is allowed


def test_parameters_set_after_construction_are_checked_by_fit(small_env: ReplayMajorityEnv) -> None:
    learner = make_learner("ucb")
    learner.c = -1.0  # type: ignore[attr-defined]
    with pytest.raises(ParamError, match="ucb: c must be a number >= 0"):
        learner.fit(small_env, 300)
    assert not hasattr(learner, "samples_")


def test_ucb_with_c_zero_runs_without_warnings(small_env: ReplayMajorityEnv) -> None:
    assert make_learner("ucb:c=0", seed=0).fit(small_env, 300).samples_ == 300


def test_non_integer_budget_is_rejected(small_env: ReplayMajorityEnv) -> None:
    with pytest.raises(BudgetError):
        make_learner("psst").fit(small_env, 100.5)  # type: ignore[arg-type]


def test_psst_on_math_is_fast_and_beats_the_reference(math_env: ReplayMajorityEnv) -> None:
    import time

    tables = exact_tables(math_env)
    values = []
    start = time.process_time()
    for seed in range(4):
        learner = make_learner("psst", seed=seed).fit(math_env, 20_000)
        assert learner.samples_ <= 20_000
        values.append(tables.value(learner.actions_, "train").mean())
    assert (time.process_time() - start) / 4 < 0.5
    assert np.mean(values) > 0.7968  # reference PSST at 20K (train-table utility)
