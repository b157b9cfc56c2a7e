"""How much of PSST's regret a perfect prompt screen would remove: learners handed the best prompts.

    python benchmarks/psst_ceiling.py [--dataset ../shared/data/math_mv.npz] [--budget 20000]
                                      [--seeds 40] [--top 2,4,6,8]

``handed-top-k`` is told, for free, the k prompts whose best arms are best on the *train* table
(ranked by their best-arm utility averaged over the contexts) and spends the whole budget on
them uniformly: every pull at N_max on common queries (drawn without replacement), reused for
every scale by the exact all-subsets estimator, exactly as ``psst`` estimates. It is not a
learner anyone could run (it knows the answer to the screening question); it bounds what the
budget buys once screening is solved. Printed beside ``psst`` at the same budget and seeds:
exact train / test utility, and the regret per context split into the prompt part (the chosen
prompt's best arm below the oracle) and the scale part (the chosen N below that prompt's best).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from proxy.train.base import Learner
from proxy.train.env import ReplayMajorityEnv
from proxy.train.errors import TableError
from proxy.train.evaluate import exact_tables
from proxy.train.registry import make_learner

DEFAULT_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "math_mv.npz"


class HandedPrompts(Learner):
    """Uniform CRN pulls at N_max of a given prompt set (an oracle-screened reference)."""

    def __init__(self, prompts: list[int], *, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.prompts = prompts

    def _run(self) -> np.ndarray:
        env = self._env
        prompts = np.asarray(self.prompts, dtype=np.int64)
        m = self.left // (env.n_max * prompts.size)
        self._pull_crn(prompts, np.full(prompts.size, env.n_max), m)
        alive = np.zeros((len(env.contexts), env.n_prompts, env.n_max), dtype=bool)
        alive[:, prompts] = True
        return alive


def regrets(train: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per context: total regret to the in-sample oracle and its scale part."""
    c = np.arange(train.shape[0])
    chosen = train[c, actions[:, 0], actions[:, 1] - 1]
    prompt_best = train[c, actions[:, 0]].max(axis=1)
    return train.max(axis=(1, 2)) - chosen, prompt_best - chosen


def main(args: argparse.Namespace) -> int:
    try:
        env = ReplayMajorityEnv.from_npz(args.dataset)
    except TableError as exc:
        print(f"psst_ceiling: error: {exc}", file=sys.stderr)
        return 2
    tables = exact_tables(env)
    ranking = np.argsort(-tables.train.max(axis=2).mean(axis=0), kind="stable")
    learners = {"psst": lambda s: make_learner("psst", seed=s)}
    for k in args.top:
        learners[f"handed-top-{k}"] = lambda s, k=k: HandedPrompts([int(p) for p in ranking[:k]], seed=s)
    rows = []
    with tqdm(total=len(learners) * args.seeds, desc="fits", unit="fit", file=sys.stderr, leave=False) as bar:
        for name, make in learners.items():
            train, test, total, scale = [], [], [], []
            for seed in range(args.seeds):
                fit = make(seed).fit(env, args.budget)
                c = np.arange(len(env.contexts))
                train.append(tables.train[c, fit.actions_[:, 0], fit.actions_[:, 1] - 1].mean())
                test.append(tables.test[c, fit.actions_[:, 0], fit.actions_[:, 1] - 1].mean())
                r, s = regrets(tables.train, fit.actions_)
                total.append(r)
                scale.append(s)
                bar.update(1)
            rows.append((name, np.array(train), np.mean(test), np.mean(total, axis=0), np.mean(scale, axis=0)))
    names = ", ".join(c.name for c in env.contexts)
    print(f"budget {args.budget}, {args.seeds} seeds; prompt ranking (best first): "
          f"{' '.join(str(int(p)) for p in ranking[:max(args.top)])}")
    print(f"in-sample oracle {tables.train.max(axis=(1, 2)).mean():.4f}")
    print(f"{'learner':<14} {'train ± se':>16} {'test':>7}   regret per context ({names}): total = prompt + scale")
    for name, train, test, total, scale in rows:
        parts = "  ".join(f"{t:.4f} = {t - s:.4f} + {s:.4f}" for t, s in zip(total, scale))
        print(f"{name:<14} {train.mean():.4f} ± {train.std(ddof=1) / np.sqrt(train.size):.4f} {test:.4f}   {parts}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_TABLE, help="majority-vote table (.npz)")
    parser.add_argument("--budget", type=int, default=20000, help="samples per fit")
    parser.add_argument("--seeds", type=int, default=40, help="seeds per learner")
    parser.add_argument("--top", type=lambda s: [int(v) for v in s.split(",")], default=[2, 4, 6, 8],
                        help="comma-separated sizes of the handed prompt sets")
    raise SystemExit(main(parser.parse_args()))
