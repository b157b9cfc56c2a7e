"""``iapo train``: learn a policy live, against the configured upstream, and write the policy file.

Every majority-voting task named by ``--task`` (with its JSONL task set and reference answers) is
trained with its own learner (``--algorithm``, seeded by ``--seed``) and ``--budget`` samples;
contexts are the config's profiles (weights on ``accuracy`` and ``cost``; the others are not
measured by majority voting). Samples are cached in ``--cache`` as they complete: the same
command after a kill resumes without calling the upstream for what is cached, and other
profiles or learners reuse the draws. ``--keep FILE`` carries the contexts of every task not
trained here (and the fallback) over from an existing policy.

Exit codes: 0 written; 2 bad input, nothing spent or written (unknown task or profile, bad task
set line, bad ``--algorithm`` or learner parameter, bad option value, budget below one round,
unwritable ``--out``, unreachable upstream); 1 the run stopped (upstream failure after retries,
``--max-cost-usd`` reached, ``--out`` no longer writable at the end): nothing written, what was
drawn stays cached; 130 interrupted (same).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.config import Config, ModelConfig
    from proxy.policy.schema import Policy
    from proxy.train.base import Learner
    from proxy.train.policy_out import TrainedTask
    from proxy.train.sampler import LiveSampler

__all__ = ["add_arguments", "run"]

DEFAULT_CACHE = Path(".cache/iapo-train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config.yaml", help="proxy config (tasks, prompts, profiles, models)")
    parser.add_argument("--task", required=True, help="task(s) to train, comma-separated (majority voting with references)")
    parser.add_argument("--budget", required=True, type=int, help="samples per task")
    parser.add_argument("--algorithm", default="psst", help="learner spec, e.g. psst, psst-k:k=4, ucb")
    parser.add_argument("--profiles", default=None, help="profiles to train (default: all in the config)")
    parser.add_argument("--prompts", default=None, help="candidate prompt ids (default: the whole library)")
    parser.add_argument("--model", default=None, help="configured model to train against (default: the first)")
    parser.add_argument("--n-max", type=int, default=None, help="largest N (default: fanout.n_max)")
    parser.add_argument("--concurrency", type=int, default=32, help="upstream calls in flight")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"sample cache folder (default {DEFAULT_CACHE})")
    parser.add_argument("--seed", type=int, default=0, help="learner seed (and split seed for unsplit task sets)")
    parser.add_argument("--holdout", type=float, default=1 / 3, help="held-out fraction for task sets without a split field")
    parser.add_argument("--max-cost-usd", type=float, default=None, help="stop (writing nothing) past this many dollars")
    parser.add_argument("--timeout-s", type=float, default=None, help="per-call timeout (default: the model's timeout_s)")
    parser.add_argument("--retries", type=int, default=4, help="retries of a transient upstream error")
    parser.add_argument("--keep", type=Path, default=None, help="carry other tasks' contexts over from this policy")
    parser.add_argument("--id", default=None, help="policy id (default: the --out file's stem)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--out", required=True, type=Path, help="policy file to write (atomically)")


class _BadInput(Exception):
    pass


@dataclass
class _Plan:
    config: Config
    model: ModelConfig
    task_sets: list[Any]
    profiles: list[tuple[str, dict[str, float]]]
    prompts: list[Any]
    n_max: int
    keep: Policy | None
    learners: list[Learner]  # one per task set, validated for the prompts and n_max


def _names(text: str | None, known: list[str], what: str) -> list[str]:
    if text is None:
        return list(known)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise _BadInput(f"--{what} is empty")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise _BadInput(f"unknown {what[:-1]} '{unknown[0]}' (known: {', '.join(known)})")
    return list(dict.fromkeys(names))


def _plan(args: argparse.Namespace, config: Config) -> _Plan:
    from proxy.policy.load import PolicyError, load_policy
    from proxy.train.outputs import check_writable
    from proxy.train.registry import make_learner
    from proxy.train.taskset import load_task_set

    if args.budget <= 0:
        raise _BadInput("--budget must be a positive number of samples")
    if args.concurrency < 1 or args.retries < 0:
        raise _BadInput("--concurrency must be >= 1 and --retries >= 0")
    if args.max_cost_usd is not None and not args.max_cost_usd > 0:
        raise _BadInput("--max-cost-usd must be > 0")
    if args.timeout_s is not None and not (math.isfinite(args.timeout_s) and args.timeout_s > 0):
        raise _BadInput(f"--timeout-s must be a finite number of seconds > 0, got {args.timeout_s:g}")
    if args.seed < 0:
        raise _BadInput(f"--seed must be >= 0, got {args.seed}")
    learner = make_learner(args.algorithm, seed=args.seed)  # a bad spec fails here, before anything
    tasks = _names(args.task, [t.name for t in config.tasks], "tasks")
    task_sets = []
    for name in tasks:
        task = config.task(name)
        assert task is not None
        task_sets.append(load_task_set(task, seed=args.seed, holdout=args.holdout))
    profiles = [(p, dict(config.profiles[p])) for p in _names(args.profiles, list(config.profiles), "profiles")]
    prompts = [config.prompts[p] for p in _names(args.prompts, list(config.prompts), "prompts")]
    models = [m.name for m in config.models]
    if not models:
        raise _BadInput("the config has no models")
    model = config.model(_names(args.model, models, "models")[0] if args.model else models[0])
    assert model is not None
    n_max = config.fanout.n_max if args.n_max is None else args.n_max
    if not 1 <= n_max <= config.fanout.n_max:
        raise _BadInput(f"--n-max must be in 1..{config.fanout.n_max} (fanout.n_max)")
    shape = _Shape(len(prompts), n_max)
    learner.validate(shape)  # type: ignore[arg-type]
    minimum = learner.min_budget(shape)  # type: ignore[arg-type]
    if args.budget < minimum:
        raise _BadInput(f"--budget {args.budget} is too small for one round of {args.algorithm} over "
                        f"{len(prompts)} prompts: the minimum is {minimum} samples")
    learners = [learner, *(make_learner(args.algorithm, seed=args.seed) for _ in task_sets[1:])]
    check_writable(args.out, "--out")
    keep = None
    if args.keep is not None:
        try:
            keep = load_policy(args.keep, config)
        except PolicyError as exc:
            raise _BadInput(f"--keep: {exc}") from None
    return _Plan(config, model, task_sets, profiles, prompts, n_max, keep, learners)


def _summary(trained: list[TrainedTask], sampler: LiveSampler, wall_s: float) -> str:
    lines = [f"{'task':<18}{'profile':<12}{'action':<22}{'accuracy':>9}{'cost':>9}{'utility':>9}"]
    for t in trained:
        for ctx in _contexts(t):
            est = ctx.estimate(ctx.action)
            figures = ("unobserved" if est is None else
                       f"{est.means['accuracy']:>9.3f}{est.cost:>9.4f}{est.utility(ctx.weights):>9.3f}")
            lines.append(f"{ctx.task:<18}{ctx.profile:<12}{f'{ctx.action.prompt} n={ctx.action.n}':<22}{figures}")
    s = sampler.spend
    lines.append(f"samples {s.samples} ({s.cached} from the cache, {s.calls} upstream calls, "
                 f"{s.retries} retries), "
                 f"tokens {s.tokens}, cost ${s.cost_usd:.4f}, {wall_s:.1f} s")
    return "\n".join(lines)


def _contexts(t: TrainedTask) -> list[Any]:
    from proxy.train.policy_out import task_contexts

    return task_contexts(t)


def run(args: argparse.Namespace) -> int:
    from proxy.config import load_config_or_report
    from proxy.train.errors import CostLimitError, LiveError, OutputError, TrainError

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    try:
        plan = _plan(args, config)
    except (_BadInput, TrainError, ValueError) as exc:
        print(f"iapo train: error: {exc}", file=sys.stderr)
        return 2
    try:
        return _train(args, plan)
    except _BadInput as exc:
        print(f"iapo train: error: {exc}", file=sys.stderr)
        return 2
    except OutputError as exc:
        print(f"iapo train: stopped: {exc}; nothing written. The samples drawn are cached in "
              f"{args.cache}: re-run the same command to write it (nothing is drawn again).", file=sys.stderr)
        return 1
    except CostLimitError as exc:
        print(f"iapo train: stopped: {exc}; nothing written. The samples drawn are cached in "
              f"{args.cache}: re-run with a higher --max-cost-usd to continue.", file=sys.stderr)
        return 1
    except LiveError as exc:
        print(f"iapo train: stopped: {exc}; nothing written. Completed samples are cached in "
              f"{args.cache}: re-run the same command to resume.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\niapo train: interrupted; nothing written. Samples drawn are cached in {args.cache}: "
              "re-run the same command to resume.", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace, plan: _Plan) -> int:
    from tqdm import tqdm

    from proxy import __version__
    from proxy.policy.schema import Provenance
    from proxy.policy.write import write_policy
    from proxy.sim.embedded import start_embedded
    from proxy.train.cache import SampleCache
    from proxy.train.env import Context
    from proxy.train.errors import LiveError, OutputError
    from proxy.train.live import LiveMajorityEnv
    from proxy.train.policy_out import TrainedTask, budget_of, build_policy
    from proxy.train.registry import parse_spec
    from proxy.train.sampler import LiveSampler
    from proxy.upstream.router import UpstreamRouter

    config, model = plan.config, plan.model
    contexts = [Context(name, w.get("cost", 0.0), (w.get("accuracy", 0.0),)) for name, w in plan.profiles]
    learners = plan.learners
    try:
        cache = SampleCache(args.cache)
    except OSError as exc:
        raise _BadInput(f"cannot read --cache {args.cache}: {exc.strerror or exc}") from None
    bar = tqdm(total=args.budget * len(plan.task_sets), unit="sample", desc="train", file=sys.stderr,
               disable=True if args.quiet else None, dynamic_ncols=True)

    def progress(spend: Any) -> None:
        bar.update(1)
        bar.set_postfix_str(f"${spend.cost_usd:.4f} ({spend.calls} calls)", refresh=False)

    upstream = UpstreamRouter()
    sampler = LiveSampler(config, model, upstream, cache, concurrency=args.concurrency,
                          timeout_s=args.timeout_s, retries=args.retries,
                          max_cost_usd=args.max_cost_usd, on_sample=progress)
    started = time.perf_counter()
    with asyncio.Runner() as runner:
        sim = None
        try:
            if model.embedded:
                sim = runner.run(start_embedded(config))
                upstream.set_embedded_url(sim.url)
            try:
                runner.run(sampler.probe())
            except LiveError as exc:
                raise _BadInput(str(exc)) from None
            try:
                cache.open()
            except OSError as exc:
                raise _BadInput(f"cannot write --cache {args.cache}: {exc.strerror or exc}") from None
            trained = []
            for task_set, learner in zip(plan.task_sets, learners):
                bar.set_description(f"train {task_set.task}")
                env = LiveMajorityEnv(task_set, plan.prompts, contexts, sampler, runner,
                                      n_max=plan.n_max, cost_unit_usd=config.cost_unit_usd)
                learner.fit(env, args.budget)
                trained.append(TrainedTask(learner, env, tuple(plan.profiles)))
        finally:
            bar.close()
            cache.close()
            runner.run(upstream.close())
            if sim is not None:
                runner.run(sim.stop())
    wall = time.perf_counter() - started
    spend = sampler.spend
    name, params = parse_spec(args.algorithm)
    trained_tasks = {t.task for t in plan.task_sets}
    kept = sorted({c.task for c in plan.keep.contexts} - trained_tasks) if plan.keep is not None else []
    today = dt.date.today().isoformat()
    split = "; ".join(f"{t.task}: {len(t.train)} train / {len(t.heldout)} held-out ({t.split_rule})"
                      for t in plan.task_sets)
    provenance = Provenance(
        algorithm=name, params={**_used_params(learners[0], params), "n_max": plan.n_max,
                                "budget_per_task": args.budget},
        budget=budget_of(spend.samples, spend.tokens, spend.cost_usd),
        datasets=tuple(_rel(t.path) for t in plan.task_sets), upstream_model=model.name,
        seed=args.seed, date=today, project_version=__version__,
        notes=f"iapo train (live, majority voting). Split: {split}. Held-out questions were never pulled."
              + (f" Contexts for {', '.join(kept)} carried over unchanged from {args.keep}." if kept else ""))
    policy = build_policy(trained, config, policy_id=args.id or args.out.stem,
                          version=f"{today}.{args.seed}", provenance=provenance, keep=plan.keep)
    header = (f"Trained live by `iapo train` ({name}, {args.budget} samples per task, seed {args.seed}) "
              f"against {model.name}; tasks: {', '.join(t.task for t in plan.task_sets)}.\n"
              f"Reproduce: {_command(args)}")
    if kept:
        header += (f"\nContexts for {', '.join(kept)} are carried over unchanged from {args.keep} "
                   "(not trained here: live training covers majority-voting tasks with reference answers).")
    try:
        write_policy(policy, args.out, header=header)  # atomic: a failed write leaves --out as it was
    except OSError as exc:
        raise OutputError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None
    print(_summary(trained, sampler, wall))
    print(f"wrote {args.out}")
    return 0


def _used_params(learner: Learner, given: dict[str, Any]) -> dict[str, Any]:
    """The learner's parameters as the fit used them: ``reuse`` resolved (``auto`` is
    ``subsets`` live) and none of the pooled rounds' own parameters unless it pooled."""
    out = {**learner.get_params(), **given, "reuse": learner.reuse_}
    if learner.reuse_ != "pooled":
        for name in ("pull_n", "settle", "consensus", "revisit"):
            out.pop(name, None)
    return out


def _command(args: argparse.Namespace) -> str:
    """The ``iapo train`` command line of the options that shape the result."""
    parts = ["iapo train", f"--config {args.config}", f"--task {args.task}", f"--budget {args.budget}",
             f"--algorithm {args.algorithm}", f"--seed {args.seed}"]
    for flag, value in (("--profiles", args.profiles), ("--prompts", args.prompts), ("--model", args.model),
                        ("--n-max", args.n_max), ("--keep", args.keep)):
        if value is not None:
            parts.append(f"{flag} {value}")
    if args.holdout != 1 / 3:
        parts.append(f"--holdout {args.holdout:g}")
    return " ".join([*parts, f"--out {args.out}"])


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class _Shape:
    """What :meth:`Learner.validate` and :meth:`Learner.min_budget` read from an env, before
    any env exists."""

    n_prompts: int
    n_max: int = 1


if __name__ == "__main__":  # ``python -m proxy.train.cli_train`` works without the dispatcher
    _parser = argparse.ArgumentParser(prog="iapo train", description="live policy training")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
