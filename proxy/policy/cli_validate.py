"""``iapo policy validate FILE…``: exit 0 when every file is a valid policy for the config, else 1.

Prints ``FILE: ok (id, version, N contexts)`` or one ``FILE: key.path: reason`` line per problem;
several files are also checked together (no task covered twice, no duplicate ids). Exit 2 when the
config itself cannot be loaded.
"""

from __future__ import annotations

import argparse

from proxy.config import load_config_or_report
from proxy.policy.load import PolicyError, load_policy
from proxy.policy.policyset import build_policy_set
from proxy.policy.schema import Policy

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="policy files (YAML)")
    parser.add_argument("--config", default="config.yaml", help="proxy config to validate against")


def run(args: argparse.Namespace) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return 2
    status = 0
    policies: list[Policy] = []
    for name in args.files:
        try:
            policy = load_policy(name, config)
        except PolicyError as exc:
            status = 1
            for line in exc.problems:
                print(f"{name}: {line}")
            continue
        policies.append(policy)
        print(f"{name}: ok ({policy.id}, {policy.version}, {len(policy.contexts)} contexts)")
    if status == 0 and len(policies) > 1:
        try:
            build_policy_set(policies, config)
        except PolicyError as exc:
            status = 1
            for line in exc.problems:
                print(line)
    return status
