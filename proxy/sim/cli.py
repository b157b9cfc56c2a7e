"""``iapo sim``: run the simulated OpenAI-compatible upstream on its own.

Bad arguments (a setting out of range, a ``--tasks-dir`` that is not a folder or holds a bad task
set) print ``error: …`` and exit 2 before anything listens; an address it cannot listen on exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.cli import port_number

if TYPE_CHECKING:
    from proxy.sim.model import SimModel
    from proxy.sim.settings import SimSettings

__all__ = ["add_arguments", "run", "settings_from_args"]

log = logging.getLogger(__name__)


def _number(lo: float, hi: float | None = None) -> Callable[[str], float]:
    """An argparse type: a number in ``[lo, hi]`` (argparse names the flag in its error)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (lo <= value and (hi is None or value <= hi)):  # also rejects nan
            rule = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


_SECONDS, _SHARE = _number(0.0), _number(0.0, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_number, default=8001, help="port (0 picks a free one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ttft-ms", type=_SECONDS, default=350.0, help="time to first token")
    parser.add_argument("--tpot-ms", type=_SECONDS, default=12.0, help="time per output token")
    parser.add_argument("--jitter", type=_SHARE, default=0.0, help="relative latency jitter in [0, 1]")
    parser.add_argument("--tasks-dir", type=Path, default=None, help="directory of *.jsonl task sets")
    parser.add_argument("--error-rate", type=_SHARE, default=0.0, help="share of 500 replies")
    parser.add_argument("--rate-limit-rate", type=_SHARE, default=0.0, help="share of 429 replies")
    parser.add_argument("--retry-after-s", type=_SECONDS, default=1.0)
    parser.add_argument("--slow-rate", type=_SHARE, default=0.0, help="share of very slow replies")
    parser.add_argument("--slow-s", type=_SECONDS, default=30.0)
    parser.add_argument("--drop-rate", type=_SHARE, default=0.0, help="share of dropped connections")
    parser.add_argument("--malformed-rate", type=_SHARE, default=0.0, help="share of invalid JSON bodies")
    parser.add_argument("--model-name", action="append", default=None,
                        help="model id listed by /v1/models (repeatable; any name is accepted)")


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    """Settings from parsed arguments; raises ValueError for fault rates summing over 1."""
    from proxy.sim.settings import DEFAULT_TASKS_DIR, SimSettings

    return SimSettings(
        seed=args.seed, ttft_s=args.ttft_ms / 1000.0, tpot_s=args.tpot_ms / 1000.0,
        jitter=args.jitter, tasks_dir=args.tasks_dir or DEFAULT_TASKS_DIR,
        error_rate=args.error_rate, rate_limit_rate=args.rate_limit_rate,
        retry_after_s=args.retry_after_s, slow_rate=args.slow_rate, slow_s=args.slow_s,
        drop_rate=args.drop_rate, malformed_rate=args.malformed_rate,
        model_names=tuple(args.model_name or ("sim-1",)))


def _load_model(tasks_dir: Path) -> SimModel:
    """The response model over ``tasks_dir``; raises ``ValueError`` naming what is wrong."""
    from proxy.sim.server import load_model

    if not tasks_dir.is_dir():
        what = "does not exist" if not tasks_dir.exists() else "is not a folder"
        raise ValueError(f"--tasks-dir: {tasks_dir} {what}")
    return load_model(tasks_dir)  # a bad line: TaskFormatError (a ValueError) naming file:line


async def _serve(args: argparse.Namespace, settings: SimSettings, model: SimModel) -> None:
    from proxy.sim.server import SimServer

    server = SimServer(settings, model)
    url = await server.start(args.host, args.port)
    log.info("iapo sim ready: base URL %s (Ctrl-C to stop)", url)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rates = (args.error_rate, args.rate_limit_rate, args.slow_rate, args.drop_rate,
             args.malformed_rate)
    if sum(rates) > 1.0:  # each is in [0, 1] already (argparse)
        print("error: --error-rate, --rate-limit-rate, --slow-rate, --drop-rate and "
              "--malformed-rate must sum to at most 1", file=sys.stderr)
        return 2
    settings = settings_from_args(args)
    try:
        model = _load_model(Path(settings.tasks_dir))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(args, settings, model))
    except OSError as exc:  # only binding does I/O once the model is loaded
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # `python -m proxy.sim.cli`: the same as `iapo sim`
    _parser = argparse.ArgumentParser(prog="iapo sim", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
