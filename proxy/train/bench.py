"""Replay benchmark: fit learners on a majority-vote table and score them exactly.

Every (algorithm, budget, seed) fit is scored by the exact train/test utility of the arms it
names (:mod:`proxy.train.evaluate`); the exact tables are computed once and handed to workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from proxy.train.env import ReplayMajorityEnv
from proxy.train.evaluate import ExactTables, exact_tables, score_actions
from proxy.train.registry import make_learner

__all__ = ["BenchTask", "run_bench", "run_task", "summarise"]


@dataclass(frozen=True)
class BenchTask:
    algorithm: str
    budget: int
    seed: int


_WORKER: dict[str, Any] = {}


def _init_worker(path: str, train: np.ndarray, test: np.ndarray) -> None:
    env = ReplayMajorityEnv.from_npz(path)
    env._exact_tables = ExactTables(train, test)  # type: ignore[attr-defined]
    _WORKER["env"] = env


def _run_in_worker(task: BenchTask) -> dict[str, Any]:
    return run_task(_WORKER["env"], task)


def run_task(env: ReplayMajorityEnv, task: BenchTask) -> dict[str, Any]:
    """Fit one learner and score it; returns the JSON run record."""
    learner = make_learner(task.algorithm, seed=task.seed)
    start = time.process_time()
    learner.fit(env, task.budget)
    seconds = time.process_time() - start
    tables = exact_tables(env)
    shares = np.array([c.share for c in env.contexts])
    sc = score_actions(tables, learner.actions_, shares)
    return {
        "algorithm": task.algorithm,
        "budget": task.budget,
        "seed": task.seed,
        "actions": {c.name: [int(a[0]), int(a[1])] for c, a in zip(env.contexts, learner.actions_)},
        "samples": int(learner.samples_),
        "seconds": round(seconds, 4),
        "train_utility": sc.train,
        "test_utility": sc.test,
        "regret_test_oracle": sc.regret_test_oracle,
        "regret_train_oracle": sc.regret_train_oracle,
    }


def run_bench(
    path: Path, tasks: list[BenchTask], jobs: int = 1, on_done: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Run every task (in ``jobs`` processes when > 1); results in task order."""
    env = ReplayMajorityEnv.from_npz(path)
    tables = exact_tables(env)
    results: list[dict[str, Any]] = []

    def consume(it: Iterator[dict[str, Any]]) -> None:
        for rec in it:
            results.append(rec)
            if on_done is not None:
                on_done()

    if jobs <= 1:
        consume(run_task(env, t) for t in tasks)
    else:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(str(path), tables.train, tables.test)) as pool:
            consume(pool.map(_run_in_worker, tasks, chunksize=max(1, len(tasks) // (8 * jobs))))
    return results


def _mean_se(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    se = float(arr.std(ddof=1) / np.sqrt(arr.size)) if arr.size > 1 else 0.0
    return float(arr.mean()), se


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (algorithm, budget), in first-seen order."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["algorithm"], r["budget"]), []).append(r)
    rows = []
    for (alg, budget), rs in groups.items():
        test, test_se = _mean_se([r["test_utility"] for r in rs])
        train, train_se = _mean_se([r["train_utility"] for r in rs])
        rows.append({
            "algorithm": alg, "budget": budget, "seeds": len(rs),
            "test_mean": test, "test_se": test_se, "train_mean": train, "train_se": train_se,
            "regret_test_oracle": float(np.mean([r["regret_test_oracle"] for r in rs])),
            "regret_train_oracle": float(np.mean([r["regret_train_oracle"] for r in rs])),
            "samples_mean": float(np.mean([r["samples"] for r in rs])),
            "samples_max": int(max(r["samples"] for r in rs)),
            "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
        })
    return rows


def oracle_summary(env: ReplayMajorityEnv) -> dict[str, Any]:
    """Ceilings: in-sample oracle (train), train oracle scored on test, test oracle."""
    t = exact_tables(env)
    shares = np.array([c.share for c in env.contexts])
    w = shares / shares.sum()
    return {
        "train_oracle_train": float(w @ t.value(t.train_oracle, "train")),
        "train_oracle_test": float(w @ t.value(t.train_oracle, "test")),
        "test_oracle_test": float(w @ t.value(t.test_oracle, "test")),
        "train_oracle_actions": {c.name: [int(a[0]), int(a[1])] for c, a in zip(env.contexts, t.train_oracle)},
        "test_oracle_actions": {c.name: [int(a[0]), int(a[1])] for c, a in zip(env.contexts, t.test_oracle)},
    }
