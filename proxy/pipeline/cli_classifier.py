"""``iapo classifier``: train the task classifier from the configured task sets and save it.

The proxy loads the saved file at start-up (``classifier.path``, else ``classifier.npz`` next to
the first policy file) when it covers the configured tasks; without it, it trains one in memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config.yaml"),
                        help="configuration file (default: ./config.yaml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output .npz (default: classifier.path, else next to the first policy)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from proxy.config import ConfigError, load_config_or_report
    from proxy.pipeline.classify import (
        classifier_path,
        train_classifier,
        training_examples,
    )

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    out = args.out or classifier_path(config)
    if out.suffix != ".npz":
        print(f"error: --out: {out} must end in .npz", file=sys.stderr)
        return 2
    try:
        n = len(training_examples(config))  # a bad task set fails here, before any file exists
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {args.config}: {line}", file=sys.stderr)
        return 2
    tmp = out.with_name(out.stem + ".tmp.npz")
    try:
        train_classifier(config, tmp, seed=args.seed)
        tmp.replace(out)  # atomic: a running proxy never sees half a file
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(config.tasks)} tasks, {n} training examples, seed {args.seed})")
    return 0
