"""Table validation, pulls with common random numbers, observations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from proxy.train.bon import make_synthetic_bon
from proxy.train.env import ReplayMajorityEnv
from proxy.train.errors import TableError


def _save(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "t.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("train_probs", lambda a: a.pop("train_probs"), "missing"),
        ("test_probs", lambda a: a.__setitem__("test_probs", a["test_probs"] * 2), "sum to 1"),
        ("train_answers", lambda a: a.__setitem__("train_answers", a["train_answers"] + 10), "outside"),
        ("train_answers", lambda a: a.__setitem__("train_answers", a["train_answers"].astype(float)), "dtype"),
        ("cost_per_prompt", lambda a: a.__setitem__("cost_per_prompt", a["cost_per_prompt"][:2]), "shape"),
        ("test_answers", lambda a: a.__setitem__("test_answers", a["test_answers"][:3]), "shape"),
    ],
)
def test_malformed_tables_name_the_array(
    tmp_path: Path, name: str, mutate: object, message: str, make_arrays: object
) -> None:
    arrays = make_arrays()  # type: ignore[operator]
    mutate(arrays)  # type: ignore[operator]
    with pytest.raises(TableError, match=name) as err:
        ReplayMajorityEnv.from_npz(_save(tmp_path, **arrays))
    assert message in str(err.value) or name in str(err.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="not found"):
        ReplayMajorityEnv.from_npz(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(TableError):
        ReplayMajorityEnv.from_npz(bad)


def test_pull_draws_from_the_given_query(small_env: ReplayMajorityEnv) -> None:
    rng = np.random.default_rng(0)
    pulls = small_env.pull_many(np.array([0, 1, 2]), 5, rng, np.array([3, 3, 3]))
    assert pulls.samples.shape == (3, 5) and (pulls.queries == 3).all()
    assert pulls.samples.min() >= 0 and pulls.samples.max() < small_env.n_categories
    one = small_env.pull(1, 4, rng)
    assert one.samples.shape == (1, 4)


def test_pull_frequencies_follow_the_table(small_env: ReplayMajorityEnv) -> None:
    rng = np.random.default_rng(1)
    pulls = small_env.pull_many(np.zeros(4000, dtype=int), 5, rng, np.full(4000, 2))
    freq = np.bincount(pulls.samples.ravel(), minlength=small_env.n_categories) / pulls.samples.size
    assert np.allclose(freq, small_env.train_probs[0, 2], atol=0.01)


@pytest.mark.parametrize("reuse", ["subsets", "blocks"])
def test_observation_utility_includes_cost(small_env: ReplayMajorityEnv, reuse: str) -> None:
    rng = np.random.default_rng(2)
    pulls = small_env.pull_many(np.array([1]), 6, rng)
    obs = small_env.observe(pulls, 6, reuse)  # type: ignore[arg-type]
    credit = obs.objectives[0, :, :, 0]
    for c, ctx in enumerate(small_env.contexts):
        expected = credit - ctx.lam * obs.cost
        assert np.allclose(obs.util[c], expected)
    assert (obs.count > 0).all()


def test_synthetic_bon_has_deceptive_prompts() -> None:
    env = make_synthetic_bon(0)
    table = env.exact_utilities().train
    best_n1 = table[0, :, 0].argmax()
    best_nmax = table[0, :, -1].argmax()
    assert best_n1 < 2 <= best_nmax  # deceptive prompt wins at N=1, a high-variance one at N_max
    assert table[0, best_nmax, -1] > table[0, best_n1, -1]


def test_bon_observe_subsets_matches_blocks_on_average() -> None:
    env = make_synthetic_bon(1)
    rng = np.random.default_rng(0)
    pulls = env.pull_many(np.full(3000, 3), 8, rng, np.full(3000, 5))
    sub = env.observe(pulls, 8, "subsets")
    blk = env.observe(pulls, 8, "blocks")
    m_sub = sub.util.sum(axis=1) / sub.count.sum(axis=0)
    m_blk = blk.util.sum(axis=1) / blk.count.sum(axis=0)
    assert np.allclose(m_sub, m_blk, atol=0.01)
