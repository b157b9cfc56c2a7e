"""Pooled (plug-in) estimates and PSST on them."""

from __future__ import annotations

import numpy as np
import pytest

from proxy.train.bon import make_synthetic_bon
from proxy.train.env import ReplayMajorityEnv
from proxy.train.errors import ParamError
from proxy.train.evaluate import exact_tables
from proxy.train.registry import make_learner
from proxy.train.subsets import exact_majority


def test_estimate_is_the_exact_credit_of_the_pooled_answers(small_env: ReplayMajorityEnv) -> None:
    stats = small_env.pooled_stats()
    # prompt 1 on queries 0 and 3, prompt 2 on query 3, in two pulls each: counts add up
    pulls = [(1, 0, [2, 0, 1, 1]), (1, 0, [1, 2, 0, 0]), (1, 3, [0, 3, 1, 0]),
             (2, 3, [1, 1, 1, 1]), (2, 3, [0, 0, 0, 2])]
    for p, q, counts in pulls:
        stats.add_counts(np.array([p]), np.array([q]), np.array([counts]))
    pooled = {(1, 0): [3, 2, 1, 1], (1, 3): [0, 3, 1, 0], (2, 3): [1, 1, 1, 3]}
    ks = np.arange(1, small_env.n_max + 1)
    lams = np.array([c.lam for c in small_env.contexts])
    mean = stats.mean()
    for p, queries in ((1, (0, 3)), (2, (3,))):
        counts = np.array([pooled[(p, q)] for q in queries], dtype=float)
        credit = exact_majority(counts / counts.sum(axis=1, keepdims=True),
                                small_env.train_answers[list(queries)], small_env.n_max).mean(axis=0)
        expected = credit[None] - lams[:, None] * ks * small_env.cost_per_prompt[p]
        np.testing.assert_allclose(mean[:, p], expected, atol=1e-12)
    assert np.isnan(mean[:, 0]).all()  # never pulled
    assert stats.count[:, 0].tolist() == [0, 2, 1, 0]  # queries pulled per prompt


def test_the_table_interval_is_over_queries(small_env: ReplayMajorityEnv) -> None:
    stats = small_env.pooled_stats()
    rng = np.random.default_rng(0)
    queries = np.arange(small_env.n_queries)
    stats.add_counts(np.zeros(queries.size, dtype=np.int64), queries,
                     rng.integers(0, 4, size=(queries.size, small_env.n_categories)) + 1)
    table = stats.table(np.array([[0, 1], [0, 5]]))
    assert table.n_obs.tolist() == [queries.size, queries.size]
    assert np.all(table.ci_low < table.utility) and np.all(table.utility < table.ci_high)
    np.testing.assert_allclose(table.utility, stats.mean()[:, 0, [0, 4]])


def test_psst_pools_on_a_table_and_falls_back_elsewhere(small_env: ReplayMajorityEnv) -> None:
    assert make_learner("psst", seed=0).fit(small_env, 400).reuse_ == "pooled"
    assert make_learner("psst:reuse=subsets", seed=0).fit(small_env, 400).reuse_ == "subsets"
    bon = make_synthetic_bon(0)  # scores, not answers: nothing to pool
    assert make_learner("psst", seed=0).fit(bon, 1000).reuse_ == "subsets"
    with pytest.raises(ParamError, match=r"psst: reuse must be 'subsets' or 'blocks' on this "
                                         r"environment \(it cannot pool answers\), got 'pooled'"):
        make_learner("psst:reuse=pooled").fit(bon, 1000)
    with pytest.raises(ParamError, match=r"psst-k: reuse must be 'subsets' or 'blocks', got 'pooled'"):
        make_learner("psst-k:reuse=pooled")
    with pytest.raises(ParamError, match=r"psst: pull_n must be an integer >= 1, got 0"):
        make_learner("psst:pull_n=0")
    with pytest.raises(ParamError, match=r"psst: settle must be an integer >= 1, got 0"):
        make_learner("psst:settle=0")
    with pytest.raises(ParamError, match=r"psst: consensus must be a fraction in \[0, 1\], got 1.5"):
        make_learner("psst:consensus=1.5")
    with pytest.raises(ParamError, match=r"psst: revisit must be true or false \(or 1 or 0\), got 2"):
        make_learner("psst:revisit=2")


def test_revisits_go_where_the_credit_is_uncertain(small_env: ReplayMajorityEnv) -> None:
    stats = small_env.pooled_stats()
    answers, n_q = small_env.train_answers, small_env.n_queries
    counts = np.zeros((n_q, small_env.n_categories), dtype=np.int64)
    counts[np.arange(n_q), answers] = 8  # every query settled: 8 right answers of 8
    split, wrong = 5, 7
    counts[split] = 0
    counts[split, answers[split]] = counts[split, (answers[split] + 1) % 4] = 4  # a 4-4 tie
    counts[wrong] = 0
    counts[wrong, (answers[wrong] + 1) % 4] = 8  # settled the wrong way
    for p in (0, 1):
        stats.add_counts(np.full(n_q, p), np.arange(n_q), counts)
    stats.add_counts(np.array([2]), np.array([3]), counts[[3]])  # prompt 2: query 3 only
    assert stats.unseen(np.array([0, 1])).tolist() == []
    assert stats.unseen(np.array([1, 2])).tolist() == [q for q in range(n_q) if q != 3]
    assert stats.revisits(np.array([0, 1]), 8, 3).tolist() == [split] * 3


@pytest.mark.parametrize("revisit", [False, True])
def test_psst_revisits_once_the_finalists_have_seen_every_query(
        small_env: ReplayMajorityEnv, revisit: bool) -> None:
    # settle=8: every first pull has 8 answers, so only the revisits make the counts uneven
    learner = make_learner(f"psst:revisit={int(revisit)},settle=8", seed=1).fit(small_env, 5000)
    served = learner.actions_[0, 0]
    per_query = learner.stats_.counts[served].sum(axis=1)  # answers of the served prompt
    if not revisit:  # the cycle: every query within one pull (8 answers) of every other
        assert per_query.max() - per_query.min() <= 8
        return
    assert per_query.max() - per_query.min() > 8
    # the most answered queries are those whose served-scale credit is nearest a coin flip
    counts = learner.stats_.counts[served].astype(float)
    credit = exact_majority(counts / per_query[:, None], small_env.train_answers,
                            small_env.n_max)[:, learner.actions_[0, 1] - 1]
    order = np.argsort(per_query)
    doubt = credit * (1 - credit)
    assert doubt[order[-3:]].mean() > doubt[order[:3]].mean()


@pytest.mark.parametrize("budget", [4, 9, 37, 401, 5000])
def test_pooled_psst_never_overspends_and_names_one_arm_per_context(
        small_env: ReplayMajorityEnv, budget: int) -> None:
    learner = make_learner("psst", seed=3).fit(small_env, budget)
    assert 0 < learner.samples_ <= budget
    assert learner.actions_.shape == (len(small_env.contexts), 2)
    p, n = learner.actions_[:, 0], learner.actions_[:, 1]
    assert (learner.stats_.count[p, 0] > 0).all()  # the served prompts were pulled
    best = learner.stats_.mean()[np.arange(len(p)), p].argmax(axis=1) + 1
    assert n.tolist() == best.tolist()  # each at its prompt's best estimated scale


def test_pooling_beats_per_pull_subsets_on_math(math_env: ReplayMajorityEnv) -> None:
    tables = exact_tables(math_env)

    def train(spec: str) -> float:
        return float(np.mean([tables.value(make_learner(spec, seed=s).fit(math_env, 20_000).actions_,
                                           "train").mean() for s in range(8)]))
    assert train("psst") > train("psst:reuse=subsets") + 0.001


def test_a_pull_whose_first_answers_agree_with_the_query_stops_there(make_arrays) -> None:  # type: ignore[no-untyped-def]
    a = make_arrays(n_prompts=4, n_train=40)
    easy, split = np.arange(20), np.arange(20, 40)
    right = np.zeros_like(a["train_probs"])
    right[:, np.arange(40), a["train_answers"]] = 1.0  # one answer, always right
    a["train_probs"][:] = right
    a["train_probs"][1:, split] = 0.25  # on the split queries the other prompts guess
    env = ReplayMajorityEnv(**a, n_max=6)
    specs = {"default": "", "no consensus": "consensus=0,", "off": "settle=8,"}
    fits = {k: make_learner(f"psst:{v}revisit=0", seed=2).fit(env, 400) for k, v in specs.items()}
    answers = {k: f.stats_.counts.sum(axis=2) for k, f in fits.items()}  # (P, Q)
    for k, f in fits.items():
        assert f.samples_ == answers[k].sum() <= 400  # every answer drawn is pooled and paid for
        stopped = answers[k] == 4
        assert (f.stats_.counts[stopped].max(axis=1) == 4).all()  # only unanimous pulls stop at 4
    default = answers["default"]
    assert set(default[:, easy].ravel()) <= {0, 4}  # all prompts agree: nothing extended
    assert set(default[0, split]) <= {0, 8}  # prompt 0 agrees with itself, not with the query
    assert (default[1:, split] == 8).sum() > (default[1:, split] == 4).sum()
    assert set(answers["no consensus"][0, split]) <= {0, 4}  # its own agreement is enough
    assert set(answers["off"].ravel()) <= {0, 8}  # settle >= pull_n: every pull draws 8
    # the answers saved go to queries not yet seen
    assert (default > 0).any(axis=0).sum() > (answers["off"] > 0).any(axis=0).sum()
