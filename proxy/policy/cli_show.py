"""``iapo policy show FILE``: a policy as a table, context -> action.

Columns: task, profile, weights, prompt, N, aggregator, estimated utility of the action under the
context's weights, its margin over the runner-up arm, and the action's observations. With
``--weights accuracy=1,cost=0.5`` it also prints what the proxy would choose for those weights
(checked as the proxy checks ``x-iapo-weights``: known objectives, finite numbers >= 0, not all
zero; objectives left out weigh 0).

Exit codes as for ``iapo policy validate``: 2 for a config that cannot be loaded (or bad
``--weights``), 1 for an invalid policy; nothing is printed to stdout then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from proxy.config import Config, load_config_or_report, parse_weights
from proxy.errors import InvalidRequest
from proxy.pipeline.weights import parse_weights_header
from proxy.policy.load import PolicyError, load_policy
from proxy.policy.schema import Context, Policy
from proxy.policy.select import select_action
from proxy.validate import Problems

__all__ = ["add_arguments", "format_policy", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="policy file (YAML)")
    parser.add_argument("--config", default="config.yaml", help="proxy config to validate against")
    parser.add_argument("--weights", default=None,
                        help="also show the choice for these weights, e.g. accuracy=1,cost=0.5")


def _num(x: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def _weights(w: Mapping[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in w.items())


def _row(c: Context) -> list[str]:
    est = c.estimate(c.action)
    util = None if est is None else est.utility(c.weights)
    others = [e.utility(c.weights) for e in c.estimates if e is not est]
    margin = None if util is None or not others else util - max(others)
    return [c.task, c.profile, _weights(c.weights), c.action.prompt, str(c.action.n),
            c.action.aggregator + (f"/{c.action.scorer}" if c.action.scorer else ""),
            _num(util), _num(margin, "{:+.4f}"), "-" if est is None else str(est.observations)]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def format_policy(policy: Policy) -> str:
    """The readable description ``iapo policy show`` prints."""
    p = policy.provenance
    lines = [
        f"policy {policy.id}  version {policy.version}  schema {policy.schema}",
        f"algorithm {p.algorithm}  date {p.date or '-'}  upstream {p.upstream_model or '-'}  "
        f"seed {p.seed if p.seed is not None else '-'}",
        f"budget: {p.budget.samples} samples, {p.budget.tokens} tokens, ${p.budget.cost_usd:.2f}",
        f"prompts: {', '.join(policy.prompts)}",
        f"fallback: {policy.fallback.prompt} N={policy.fallback.n} {policy.fallback.aggregator}",
    ]
    for task, path in policy.classifiers.items():
        lines.append(f"classifier[{task}]: {path}")
    header = ["task", "profile", "weights", "prompt", "N", "aggregator", "est.utility",
              "margin", "obs"]
    lines += ["", *_table(header, [_row(c) for c in policy.contexts])]
    return "\n".join(lines)


def _parse_weights(text: str, config: Config) -> dict[str, float]:
    """``--weights`` over every objective, validated as the server validates ``x-iapo-weights``;
    raises ``ValueError`` with one ``--weights…: reason`` line per problem."""
    try:
        raw = parse_weights_header(text)
    except InvalidRequest:
        raise ValueError("--weights: expected objective=weight,... e.g. accuracy=1,cost=0.5") from None
    problems = Problems()
    weights = parse_weights(raw, config.all_objectives, "--weights", problems)
    if problems:
        raise ValueError("\n".join(problems.lines))
    return {o: weights.get(o, 0.0) for o in config.all_objectives}


def run(args: argparse.Namespace) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    try:
        policy = load_policy(args.file, config)
    except PolicyError as exc:
        for line in exc.problems:
            print(f"{args.file}: {line}", file=sys.stderr)
        return 1
    weights = None
    if args.weights is not None:
        try:
            weights = _parse_weights(args.weights, config)
        except ValueError as exc:
            for line in str(exc).splitlines():
                print(f"error: {line}", file=sys.stderr)
            return 2
    print(format_policy(policy))
    if weights is not None:
        rows = []
        for task in policy.tasks:
            s = select_action(policy, task, weights)
            rows.append([task, s.action.prompt, str(s.action.n), s.action.aggregator, s.rule,
                         _num(s.estimated_utility)])
        print(f"\nfor weights {_weights(weights)}:")
        print("\n".join(_table(["task", "prompt", "N", "aggregator", "rule", "est.utility"], rows)))
    return 0
