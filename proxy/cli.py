"""The `iapo` command line: one sub-command per module, imported only when it runs.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; importing
it must be cheap (no litellm, no numpy-heavy work at import) so that ``iapo --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "port_number"]

# name -> (module, one-line help). Nested groups use "group.sub".
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("proxy.server.cli", "start the proxy (embedded simulated upstream by default)"),
    "sim": ("proxy.sim.cli", "start the simulated OpenAI-compatible upstream on its own"),
    "policy.validate": ("proxy.policy.cli_validate", "validate policy files (exit 0 if all valid)"),
    "policy.show": ("proxy.policy.cli_show", "print a policy as a table: context -> action"),
    "classifier": ("proxy.pipeline.cli_classifier", "train the task classifier from the task sets"),
    "train": ("proxy.train.cli_train", "train a policy live against an upstream with PSST"),
    "bench": ("proxy.train.cli_bench", "replay benchmark of learners on a response table"),
}


def port_number(text: str) -> int:
    """An argparse type: a TCP port number, 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iapo",
        description="IAPO proxy: inference-aware prompt optimisation for OpenAI-compatible LLMs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        target = sub
        leaf = name
        if "." in name:
            group, leaf = name.split(".", 1)
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} commands", description=f"{group} commands")
                groups[group] = gp.add_subparsers(dest=f"{group}_command", required=True, metavar="COMMAND")
            target = groups[group]
        module = importlib.import_module(module_name)
        p = target.add_parser(leaf, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; returns its exit code."""
    args = _build_parser().parse_args(argv)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
