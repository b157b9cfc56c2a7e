"""Shared fixtures: a small random majority table, and the MATH table when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from proxy.train.env import ReplayMajorityEnv

MATH_TABLE = Path(os.environ.get("IAPO_MATH_TABLE", Path(__file__).resolve().parents[2].parent / "shared" / "data" / "math_mv.npz"))


def small_arrays(seed: int = 0, n_prompts: int = 4, n_train: int = 12, n_test: int = 8, n_cat: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_probs": rng.dirichlet(np.ones(n_cat), (n_prompts, n_train)),
        "train_answers": rng.integers(0, n_cat, n_train),
        "test_probs": rng.dirichlet(np.ones(n_cat), (n_prompts, n_test)),
        "test_answers": rng.integers(0, n_cat, n_test),
        "cost_per_prompt": rng.uniform(0.005, 0.01, n_prompts),
    }


@pytest.fixture
def small_env() -> ReplayMajorityEnv:
    a = small_arrays()
    return ReplayMajorityEnv(**a, n_max=6)


@pytest.fixture
def easy_env() -> ReplayMajorityEnv:
    """Prompt 2 is clearly best at every N; N_max 8."""
    a = small_arrays(1, n_prompts=6, n_train=30)
    probs = a["train_probs"]
    ans = a["train_answers"]
    probs[:] = 0.25
    for p in range(6):
        q = 0.75 if p == 2 else 0.3
        probs[p, :, :] = (1 - q) / 3
        probs[p, np.arange(30), ans] = q
    a["test_probs"][:] = 0.25
    return ReplayMajorityEnv(**a, n_max=8)


@pytest.fixture(scope="session")
def math_env() -> ReplayMajorityEnv:
    if not MATH_TABLE.is_file():
        pytest.skip(f"MATH table not found at {MATH_TABLE} (set IAPO_MATH_TABLE)")
    return ReplayMajorityEnv.from_npz(MATH_TABLE)


@pytest.fixture
def make_arrays():  # type: ignore[no-untyped-def]
    return small_arrays
