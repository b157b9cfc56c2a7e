"""``iapo bench``: replay benchmark of learners on a response table (exact scoring).

Exit codes: 0 done; 2 bad input (table, learner spec, budgets, an unwritable ``--json`` or
``--plot``), found before any fit runs; 1 an output could not be written after the run (then
none is replaced: both are written to temporary files first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=Path, help="majority-vote table (.npz)")
    parser.add_argument("--algorithms", default="psst",
                        help="comma-separated learner specs NAME[:KEY=VALUE,...], e.g. psst,psst-k:k=4,burn_in=0.1,ucb "
                             "(an item KEY=VALUE belongs to the learner before it; ';' also separates learners)")
    parser.add_argument("--budgets", default="2500,5000,10000,20000", help="comma-separated sample budgets")
    parser.add_argument("--seeds", default="20", help="number of seeds (0..S-1)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--json", type=Path, default=None, help="write runs and summary as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="write utility vs budget (PNG)")


class _BadInput(Exception):
    pass


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise _BadInput(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise _BadInput(f"{what} must be positive integers, got {text!r}")
    return values


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'algorithm':<26}{'budget':>7}  {'test ± se':>16}  {'train ± se':>16}  {'reg.test':>8}  {'reg.train':>9}  {'samples':>8}  {'s/fit':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['algorithm']:<26}{r['budget']:>7}  {r['test_mean']:.4f} ± {r['test_se']:.4f}  "
            f"{r['train_mean']:.4f} ± {r['train_se']:.4f}  {r['regret_test_oracle']:>8.4f}  "
            f"{r['regret_train_oracle']:>9.4f}  {r['samples_mean']:>8.0f}  {r['seconds_mean']:>6.3f}"
        )
    lines.append("reg.test / reg.train: test-table regret to the test oracle / to the in-sample "
                 "oracle's arms")
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], oracles: dict[str, Any]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, oracle in ((axes[0], "train", "train_oracle_train"), (axes[1], "test", "test_oracle_test")):
        for i, alg in enumerate(dict.fromkeys(r["algorithm"] for r in rows)):
            rs = [r for r in rows if r["algorithm"] == alg]
            ax.errorbar([r["budget"] for r in rs], [r[f"{key}_mean"] for r in rs],
                        yerr=[r[f"{key}_se"] for r in rs], capsize=2, label=alg,
                        color=plt.cm.tab20(i % 20), marker="os^vD"[i % 5], ls=("-", "--")[i // 10 % 2],
                        lw=2.2 if alg == "psst" else 1.0)
        ax.axhline(oracles[oracle], color="k", ls="--", lw=0.8, label="oracle")
        ax.set_xscale("log")
        ax.set_xlabel("budget (samples)")
        ax.set_ylabel(f"exact {key} utility (mean over contexts)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from proxy.train.bench import BenchTask, oracle_summary, run_bench, summarise
    from proxy.train.env import ReplayMajorityEnv
    from proxy.train.errors import OutputError, TrainError
    from proxy.train.outputs import Writer, check_writable, write_atomic
    from proxy.train.registry import make_learner, split_specs

    try:
        budgets = _ints(args.budgets, "--budgets")
        seeds = _ints(args.seeds, "--seeds")
        if len(seeds) != 1:
            raise _BadInput("--seeds takes one number of seeds")
        if args.jobs < 1:
            raise _BadInput("--jobs must be >= 1")
        algorithms = split_specs(args.algorithms)
        if not algorithms:
            raise _BadInput("--algorithms is empty")
        twice = next((a for i, a in enumerate(algorithms) if a in algorithms[:i]), None)
        if twice is not None:
            raise _BadInput(f"--algorithms names {twice!r} twice")
        learners = [make_learner(alg) for alg in algorithms]
        env = ReplayMajorityEnv.from_npz(args.dataset)
        for alg, learner in zip(algorithms, learners):
            learner.validate(env)
            for b in budgets:
                if b < learner.min_budget(env):
                    raise _BadInput(f"budget {b} is too small for {alg}: one round needs {learner.min_budget(env)} samples")
        if args.json is not None and args.plot is not None and args.json.resolve() == args.plot.resolve():
            raise _BadInput(f"--json and --plot are the same file: {args.json}")
        for flag, out in (("--json", args.json), ("--plot", args.plot)):
            if out is not None:
                check_writable(out, flag)
    except (_BadInput, TrainError, ValueError) as exc:
        print(f"iapo bench: error: {exc}", file=sys.stderr)
        return 2

    tasks = [BenchTask(a, b, s) for a in algorithms for b in budgets for s in range(seeds[0])]
    with tqdm(total=len(tasks), desc="bench", unit="fit", file=sys.stderr, leave=False) as bar:
        runs = run_bench(args.dataset, tasks, jobs=args.jobs, on_done=lambda: bar.update(1))
    rows = summarise(runs)
    oracles = oracle_summary(env)
    print(_table(rows))
    print(f"oracles: in-sample (train) {oracles['train_oracle_train']:.4f}, train-best on test "
          f"{oracles['train_oracle_test']:.4f}, test oracle {oracles['test_oracle_test']:.4f}")
    outputs: list[tuple[Path, Writer]] = []
    if args.json is not None:
        doc = {"dataset": str(args.dataset), "algorithms": algorithms, "budgets": budgets, "seeds": seeds[0],
               "contexts": [c.name for c in env.contexts], "oracles": oracles, "summary": rows, "runs": runs}
        text = json.dumps(doc, separators=(",", ":"))
        outputs.append((args.json, lambda tmp: Path(tmp).write_text(text)))
    fig = _plot(rows, oracles) if args.plot is not None else None
    if fig is not None:
        outputs.append((args.plot, lambda tmp: fig.savefig(tmp, format="png", dpi=110)))
    try:
        write_atomic(outputs)
    except OutputError as exc:
        print(f"iapo bench: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if fig is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return 0


if __name__ == "__main__":  # ``python -m proxy.train.cli_bench`` works without the dispatcher
    _parser = argparse.ArgumentParser(prog="iapo bench", description="replay benchmark of learners")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
