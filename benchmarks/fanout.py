"""Fan-out latency and CPU: p50 end-to-end latency at N = 1 .. 32 through the proxy over HTTP.

The simulated upstream runs in a subprocess (``python -m proxy.sim.cli``) with a fixed 200 ms
latency per call (no per-token time, no jitter), so an ideal fan-out costs no extra latency.
The proxy (the aiohttp app from :func:`proxy.server.app.create_app` with
:class:`PipelineService`, fixed action ``cot`` × N majority, early stopping off so every sample
is awaited) runs in this process on a free port; an aiohttp client sends one request at a time.

Prints per N and strategy: p50/p90 end-to-end latency, the ratio to N=1, and CPU seconds of
this process per request (proxy + the benchmark's own HTTP client; the upstream's CPU is in the
subprocess and not counted).

    python benchmarks/fanout.py [--requests 30] [--latency-ms 200] [--ns 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web

from proxy.actions import Selection
from proxy.config import Action, load_config
from proxy.pipeline.classify import TaskClassifier
from proxy.pipeline.service import PipelineService
from proxy.server.app import create_app
from proxy.server.state import UPSTREAM

ROOT = Path(__file__).resolve().parents[1]


class _Fixed:
    def __init__(self, n: int) -> None:
        self.action = Action(prompt="cot", n=n, aggregator="majority")

    def select(self, task: str, weights: Mapping[str, float]) -> Selection:
        return Selection(self.action, "bench", "1", "fixed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_health(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"simulator did not come up at {url}")


async def _measure(sim_url: str, n: int, strategy: str, requests: int,
                   questions: list[str]) -> dict[str, float]:
    base = load_config(ROOT / "config.yaml")
    config = replace(base, models=tuple(replace(m, api_base=sim_url) for m in base.models),
                     simulator=replace(base.simulator, enabled=False),
                     fanout=replace(base.fanout, early_stop="off"))
    clf = TaskClassifier.from_config(config)

    def factory(app: web.Application) -> PipelineService:
        return PipelineService(config, app[UPSTREAM], _Fixed(n), classifier=clf,
                               strategy=strategy, early_stop=False)

    runner = web.AppRunner(create_app(config, service_factory=factory), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    lat: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"

            async def one(q: str) -> float:
                body = {"model": "sim-1", "messages": [{"role": "user", "content": q}]}
                t0 = time.perf_counter()
                async with http.post(url, json=body) as resp:
                    data = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(f"proxy answered {resp.status}: {data}")
                assert data["iapo"]["samples"]["completed"] == n
                return time.perf_counter() - t0

            for q in questions[:3]:  # warm-up: connections, classifier
                await one(q)
            cpu0 = time.process_time()
            for i in range(requests):
                lat.append(await one(questions[i % len(questions)]))
            cpu = (time.process_time() - cpu0) / requests
    finally:
        await runner.cleanup()
    lat.sort()
    return {"p50": statistics.median(lat) * 1000, "p90": lat[int(0.9 * (len(lat) - 1))] * 1000,
            "cpu_ms": cpu * 1000}


async def main(args: argparse.Namespace) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.sim.cli", "--port", str(port), "--ttft-ms",
         str(args.latency_ms), "--tpot-ms", "0", "--jitter", "0"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim_url = f"http://127.0.0.1:{port}/v1"
    rows = [json.loads(x) for x in (ROOT / "proxy/data/tasks/math.jsonl").read_text().splitlines()]
    questions = [r["input"] for r in rows[:50]]
    results: dict[tuple[int, str], dict[str, float]] = {}
    try:
        await _wait_health(f"http://127.0.0.1:{port}/health")
        for n in args.ns:
            for strategy in ("parallel", "n"):
                if n == 1 and strategy == "n":
                    continue
                results[(n, strategy)] = await _measure(sim_url, n, strategy, args.requests,
                                                        questions)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ref = results[(args.ns[0], "parallel")]["p50"]
    print(f"simulator latency {args.latency_ms:g} ms per call (subprocess), {args.requests} "
          f"sequential requests per row, through the proxy's HTTP app")
    head = f"{'N':>4} {'strategy':<10}{'p50 ms':>9}{'p90 ms':>9}{'p50 / N=1':>11}{'CPU ms/req':>12}"
    print(head)
    print("-" * len(head))
    for (n, strategy), r in results.items():
        print(f"{n:>4} {strategy:<10}{r['p50']:>9.1f}{r['p90']:>9.1f}{r['p50'] / ref:>11.3f}"
              f"{r['cpu_ms']:>12.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=30)
    p.add_argument("--latency-ms", type=float, default=200.0)
    p.add_argument("--ns", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    asyncio.run(main(p.parse_args()))
