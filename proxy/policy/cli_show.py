"""``iapo policy show FILE``: a policy as a table, context -> action.

Columns: task, profile, weights, prompt, N, aggregator, estimated utility of the action under the
context's weights, its margin over the runner-up arm, and the action's observations. With
``--weights accuracy=1,cost=0.5`` it also prints what the proxy would choose for those weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from proxy.config import ConfigError, load_config
from proxy.policy.load import PolicyError, load_policy
from proxy.policy.schema import Context, Policy
from proxy.policy.select import select_action

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


def _parse_weights(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = float(value)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        policy = load_policy(args.file, config)
    except (ConfigError, PolicyError) as exc:
        for line in exc.problems:
            print(f"{getattr(exc, 'source', args.file)}: {line}", file=sys.stderr)
        return 1
    print(format_policy(policy))
    if args.weights:
        try:
            weights = _parse_weights(args.weights)
        except ValueError:
            print(f"--weights: expected name=number,... (got {args.weights!r})", file=sys.stderr)
            return 2
        rows = []
        for task in policy.tasks:
            s = select_action(policy, task, weights)
            rows.append([task, s.action.prompt, str(s.action.n), s.action.aggregator, s.rule,
                         _num(s.estimated_utility)])
        print(f"\nfor weights {_weights(weights)}:")
        print("\n".join(_table(["task", "prompt", "N", "aggregator", "rule", "est.utility"], rows)))
    return 0
