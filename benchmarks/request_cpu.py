"""CPU of the proxy's request path in one process: no sockets, no client, no simulator.

    python benchmarks/request_cpu.py [--requests 20000] [--without PART ...]
    python benchmarks/request_cpu.py --instructions [--without PART ...]   # needs valgrind

The overhead bench's request (``benchmarks/overhead.py``: a general question, one plain sample)
is fed to aiohttp's real server protocol on a fake transport; the app is the default config's,
its model's non-streaming calls answered by a fake connection pool with a simulator's reply. So
this is everything the proxy does per request but the socket calls, without the noise of a
client and a simulator sharing the cores.

Default: CPU µs per request (process time, median of 7 repetitions). ``--instructions`` runs the
same under callgrind and counts the instructions of the measured requests only: repeatable to
about 0.01 %, the figure to compare two versions of the code by.

``--without PART`` replaces a part by a stub that returns what the part returned for a first
request, to see what it costs: ``handler`` (the chat handler; aiohttp and the middleware stay),
``service`` (the pipeline; the handler stays), ``planning`` (task, weights, action),
``classifier``, ``upstream`` (the upstream call), ``fanout`` (the sample's run and metrics
around the upstream call), ``iapo`` (the response's ``iapo`` object), ``rewrite``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # this clone's proxy, then the siblings
from overhead import BODY, bench_config  # noqa: E402  (sibling script)

from proxy.config import load_config  # noqa: E402
from proxy.metrics import Metrics  # noqa: E402
from proxy.pipeline.fanout import FanoutCounts  # noqa: E402
from proxy.pipeline.service import _Choice  # noqa: E402
from proxy.protocol import parse_chat_request  # noqa: E402
from proxy.server.app import create_app  # noqa: E402
from proxy.server.cli import loop_factory  # noqa: E402
from proxy.server.state import SERVICE  # noqa: E402
from proxy.serving import RequestContext  # noqa: E402
from proxy.upstream.base import parse_choice  # noqa: E402
from proxy.upstream.direct import DirectUpstream  # noqa: E402
from proxy.upstream.http1 import HttpResponse  # noqa: E402
from proxy.upstream.router import UpstreamRouter  # noqa: E402

PARTS = ("handler", "service", "planning", "classifier", "upstream", "fanout", "iapo", "rewrite")
_REPLY = json.dumps({
    "id": "chatcmpl-sim0000000001", "object": "chat.completion", "created": 1796147208,
    "model": "sim-1", "system_fingerprint": "fp_sim",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": (
        "Sure. When it comes to history, suspension and bridges, the key is to start from the")},
        "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": 30}}).encode()
_REQUEST = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: */*\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY


class _CannedPool:
    """The direct upstream's HTTP/1.1 pool, answering every call with the same reply."""

    response = HttpResponse(200, {"content-type": "application/json",
                                  "content-length": str(len(_REPLY))}, _REPLY)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        return self.response

    async def close(self) -> None:
        pass


class _Transport(asyncio.Transport):
    """Keeps what the server writes; ``done`` resolves at each write."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.done: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def _stub(app: web.Application, parts: list[str]) -> None:
    """Replace each part by a stub that returns what it returned for a first request."""
    svc = app[SERVICE]
    req = parse_chat_request(json.loads(BODY), max_n=16)
    ctx = RequestContext(request_id="stub")
    plan = svc.plan(req, ctx)
    for part in parts:
        if part == "handler":
            async def handler(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(body=_REPLY, content_type="application/json")
            for resource in app.router.resources():
                for route in resource:
                    if resource.canonical == "/v1/chat/completions":
                        route._handler = handler  # noqa: SLF001 - a benchmark's stub
        elif part == "service":
            result = await svc.complete(req, ctx)

            async def complete(*_: Any) -> Any:
                return result
            svc.complete = complete
        elif part == "planning":
            svc.plan = lambda *_: plan
        elif part == "classifier":
            decision = svc.classifier.classify(req.messages, req.hints, None)
            svc.classifier.classify = lambda *_: decision
        elif part in ("upstream", "fanout"):
            done = await svc.upstream.complete(plan.model, {"model": "sim-1",
                                                            "messages": req.messages})

            async def call(*_: Any, **__: Any) -> Any:
                return done
            if part == "upstream":
                svc.upstream.complete = call
            else:  # the upstream call stays, what is around it goes
                async def single(plan: Any, body: Any, limit: Any) -> _Choice:
                    done = await svc.upstream.complete(plan.model, body)
                    text, choice = parse_choice(done.body["choices"][0])
                    counts = FanoutCounts(requested=1, completed=1, calls=1, usage=done.usage,
                                          cost_usd=done.cost_usd)
                    return _Choice(text, "stop", counts, choice, scores=[])
                svc._single = single  # noqa: SLF001
        elif part == "iapo":
            iapo = svc._iapo(await svc.answer(req, ctx))  # noqa: SLF001
            svc._iapo = lambda _: iapo
        elif part == "rewrite":
            rewritten = await svc._rewrite(req, plan)  # noqa: SLF001

            async def rewrite(*_: Any) -> Any:
                return rewritten
            svc._rewrite = rewrite


def _callgrind(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                   capture_output=True, check=False)


async def measure(requests: int, parts: list[str], under_callgrind: bool) -> list[float]:
    """CPU µs per request of each repetition (one, uncounted, under callgrind)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(bench_config("http://127.0.0.1:9/v1")))
        config = load_config(path)
    metrics = Metrics()
    upstream = UpstreamRouter(direct=DirectUpstream(pool=_CannedPool()), metrics=metrics)  # type: ignore[arg-type]
    runner = web.AppRunner(create_app(config, upstream=upstream, metrics=metrics),
                           handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        await _stub(runner.app, parts)
        server = runner.server
        assert server is not None
        protocol, transport = server(), _Transport()
        protocol.connection_made(transport)
        loop = asyncio.get_running_loop()

        async def one() -> None:
            transport.done = loop.create_future()
            protocol.data_received(_REQUEST)
            await transport.done

        await one()
        if b" 200 OK" not in transport.out[0]:
            raise RuntimeError(f"the proxy did not answer 200: {transport.out[0][:200]!r}")
        reps = []
        for _ in range(1 if under_callgrind else 7):
            for _ in range(300):  # warm-up (caches, the allocator)
                await one()
            transport.out.clear()
            if under_callgrind:
                _callgrind(True)
            start = time.process_time()
            for _ in range(requests):
                await one()
                transport.out.clear()
            reps.append((time.process_time() - start) / requests * 1e6)
            if under_callgrind:
                _callgrind(False)
        return reps
    finally:
        await runner.cleanup()


def _instructions(args: argparse.Namespace) -> int:
    """Re-run this script under callgrind; the instructions per measured request."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={tmp}/callgrind.out", sys.executable, __file__,
               "--under-callgrind", "--requests", str(args.requests)]
        for part in args.without:
            cmd += ["--without", part]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                 env={**os.environ, "PYTHONHASHSEED": "0"})
        except FileNotFoundError:
            raise SystemExit("error: --instructions needs valgrind (apt install valgrind)") from None
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"error: the callgrind run failed:\n{out.stderr[-2000:]}")
    return int(found.group(1)) // args.requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=None,
                        help="measured requests per repetition (default 20 000; 2000 with "
                             "--instructions)")
    parser.add_argument("--without", action="append", default=[], choices=PARTS,
                        help="replace this part by a stub (repeatable)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per request under callgrind (needs valgrind)")
    parser.add_argument("--under-callgrind", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.requests = args.requests or (2000 if args.instructions or args.under_callgrind
                                      else 20_000)
    without = f" without {', '.join(args.without)}" if args.without else ""
    if args.instructions:
        print(f"{_instructions(args):,} instructions per request{without} (callgrind, "
              f"{args.requests} requests)")
        return 0
    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop, as `iapo serve`
        reps = runner.run(measure(args.requests, args.without, args.under_callgrind))
    if not args.under_callgrind:
        print(f"{statistics.median(reps):.1f} µs CPU per request{without} (median of "
              f"{len(reps)} x {args.requests}; each: {' '.join(f'{r:.1f}' for r in reps)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
