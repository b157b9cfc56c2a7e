"""``iapo serve``: run the proxy until SIGINT/SIGTERM.

A bad config, policy or classifier file (or a task set the classifier trains on) prints one
``error: FILE: key.path: reason`` line per problem and exits 2 (the proxy never starts on a policy
it cannot use; later reloads keep the old one). An address it cannot listen on exits 1.
Idle client connections are closed after 75 s; a request aiohttp cannot parse is answered with
its plain 400 and logged as one warning line. ``server.access_log`` (or ``--access-log``) logs one
``proxy.access`` line per request: client, request line, status, bytes, seconds, request id and
the action the pipeline took. On SIGINT/SIGTERM it stops accepting connections and gives the
requests in flight ``server.shutdown_timeout_s`` to finish before cancelling them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.cli import port_number

if TYPE_CHECKING:
    from proxy.config import Config

__all__ = ["add_arguments", "loop_factory", "run"]

log = logging.getLogger("proxy.server")
_GC_GEN0_THRESHOLD = 10_000
_KEEPALIVE_S = 75.0  # an idle connection is closed after this (aiohttp's AppRunner default: 1 h)
_ACCESS_FORMAT = '%a "%r" %s %b %Tf id=%{x-request-id}o action=%{x-iapo-action}o'


class _ListenError(Exception):
    """Binding ``host:port`` failed; the message is the reason."""


class _MalformedRequests(logging.Filter):
    """aiohttp logs each request it cannot parse (bad framing, oversized headers) as an error
    with a traceback, so any client can fill the log; keep one warning line for each."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"malformed request: {record.getMessage()}: {exc.code} {exc.message}"
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("config.yaml"),
                        help="configuration file (default: ./config.yaml)")
    parser.add_argument("--host", default=None, help="bind address (default: server.host)")
    parser.add_argument("--port", type=port_number, default=None,
                        help="port (default: server.port; 0 picks a free one)")
    parser.add_argument("--access-log", action="store_true",
                        help="log one line per request (default: server.access_log)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"], help="log level")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.server").addFilter(_MalformedRequests())
    from proxy.config import ConfigError, load_config_or_report

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    from proxy.policy.load import PolicyError

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_serve(config, host, port, args.access_log or config.server.access_log))
    except PolicyError as exc:  # an initial policy file is invalid: refuse to start
        for problem in exc.problems:
            print(f"error: {exc.source}: {problem}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # the classifier file or a task set it trains on
        for problem in exc.problems:
            print(f"error: {args.config}: {problem}", file=sys.stderr)
        return 2
    except _ListenError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # anything else the start-up could not read or open
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (about twice the request rate of the default
    loop for this server), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _tune_gc() -> None:
    """Once everything is loaded: move what exists to the permanent generation (``gc.freeze``:
    the collector no longer walks the modules, the classifier and the policies) and collect
    the youngest generation every 10 000 allocations instead of 700. At concurrency 64 the
    collector was ~9% of the proxy's CPU (``perf``); this takes ~10% off its CPU per request
    (``benchmarks/overhead.py`` traffic, paired runs). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


async def _serve(config: Config, host: str, port: int, access_log: bool) -> None:
    from aiohttp import web

    from proxy.server.app import create_app

    if access_log:  # asked for: its lines are INFO, and show whatever --log-level says
        logging.getLogger("proxy.access").setLevel(logging.INFO)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(config), handler_cancellation=True,
                           access_log=logging.getLogger("proxy.access") if access_log else None,
                           access_log_format=_ACCESS_FORMAT, keepalive_timeout=_KEEPALIVE_S,
                           shutdown_timeout=config.server.shutdown_timeout_s)
    try:
        await runner.setup()  # inside the try: a failed start-up still stops what had started
        _tune_gc()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise _ListenError(exc.strerror or str(exc)) from None
        bound = runner.addresses[0][1] if runner.addresses else port
        log.info("listening on http://%s:%s", host, bound)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
