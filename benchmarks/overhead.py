"""Latency and throughput the proxy adds: N=1 requests direct to the simulator vs through the proxy.

    python benchmarks/overhead.py [--requests 10000] [--concurrency 1 64]

Starts the simulator (zero latency) and ``iapo serve`` (direct transport to that simulator) each
in its own process, then drives both from this process with the same aiohttp client at each
concurrency, after a warm-up. The client runs on uvloop when it is installed (as ``iapo serve``
does): on a 2-core machine the load generator shares the cores with the simulator and the proxy,
and with asyncio's own loop it burns ~0.085 ms per request, CPU the proxy path then lacks.
Prints p50/p99 latency direct vs proxy, the added p50/p99 and the throughput ratio. Targets:
added p50 <= 2 ms at concurrency 1; proxy throughput >= 50 % of direct at concurrency 64.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import yaml

from proxy.server.cli import loop_factory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from upstream_cpu import sim_process  # noqa: E402  (sibling script)

# A general chat question: through the proxy it is classified (`general`), weighted (the default
# profile), looked up in the shipped policy (one plain sample) and answered with one upstream call.
BODY = json.dumps({"model": "sim-1", "max_tokens": 16, "messages": [
    {"role": "user", "content": "Tell me about the history of suspension bridges."}]}).encode()


def bench_config(api_base: str) -> dict:
    """The default config (as a YAML mapping) with its model on the direct transport to
    ``api_base`` and its relative paths made absolute (so that a copy works anywhere)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"] = [{**config["models"][0], "api_base": api_base, "transport": "direct"}]
    config["policies"]["paths"] = [str(REPO / p) for p in config["policies"]["paths"]]
    for task in config["tasks"]:
        if "dataset" in task:
            task["dataset"] = str(REPO / task["dataset"])
    return config


@contextmanager
def proxy_process(sim_url: str) -> Iterator[str]:
    """``iapo serve`` on a free port with the default config's model pointed at ``sim_url``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(bench_config(sim_url)))
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(path),
                                 "--port", "0", "--log-level", "info"], cwd=REPO,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            url = None
            while url is None:
                line = proc.stderr.readline()
                if not line:
                    raise RuntimeError("the proxy did not start")
                found = re.search(r"proxy\.server: listening on (\S+)", line)
                url = found.group(1) if found else None
            yield url + "/v1"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stderr.close()


async def _drive(session: aiohttp.ClientSession, url: str, total: int, concurrency: int
                 ) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url}: HTTP {r.status}")
                if r.headers.get("x-iapo-action", "plain;n=1").split(";")[1] != "n=1":
                    raise RuntimeError(f"the policy chose {r.headers['x-iapo-action']}, not one sample")
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench(direct: str, proxy: str, requests: int, levels: list[int], rounds: int
                ) -> list[dict]:
    """Per concurrency: warm both, then ``rounds`` alternating direct/proxy runs (so drift and
    noise hit both alike); latencies pooled, throughput the median over rounds."""
    rows = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for c in levels:
            lat: dict[str, list[float]] = {"direct": [], "proxy": []}
            rps: dict[str, list[float]] = {"direct": [], "proxy": []}
            targets = (("direct", direct + "/chat/completions"), ("proxy", proxy + "/chat/completions"))
            for _, url in targets:
                await _drive(session, url, max(200, 4 * c), c)  # warm-up
            per_round = max(c, requests // rounds)
            for _ in range(rounds):
                for name, url in targets:
                    got, secs = await _drive(session, url, per_round, c)
                    lat[name] += got
                    rps[name].append(per_round / secs)
            rows.append({"c": c, **{name: (_pct(lat[name], 0.5), _pct(lat[name], 0.99),
                                           statistics.median(rps[name])) for name in lat}})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000,
                        help="measured requests per cell (rounds of a few hundred at c=64 last "
                             "tens of ms, and their start and tail then weigh on direct more)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--rounds", type=int, default=5, help="alternating direct/proxy rounds")
    args = parser.parse_args()
    with sim_process() as sim_url, proxy_process(sim_url) as proxy_url:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop, as `iapo serve`
            rows = runner.run(bench(sim_url, proxy_url, args.requests, args.concurrency,
                                    args.rounds))
    print(f"N=1 chat completions, {args.requests} per cell in {args.rounds} alternating rounds, "
          "simulator at zero latency; sim, proxy and client each in its own process")
    print(f"{'conc':>4} | {'direct p50':>10} {'p99':>7} | {'proxy p50':>9} {'p99':>7} | "
          f"{'added p50':>9} {'p99':>7} | {'direct rps':>10} {'proxy rps':>9} {'ratio':>6}")
    ok = True
    for row in rows:
        (dp50, dp99, drps), (pp50, pp99, prps) = row["direct"], row["proxy"]
        print(f"{row['c']:>4} | {dp50:>8.2f}ms {dp99:>5.2f}ms | {pp50:>7.2f}ms {pp99:>5.2f}ms | "
              f"{pp50 - dp50:>7.2f}ms {pp99 - dp99:>5.2f}ms | {drps:>10.0f} {prps:>9.0f} "
              f"{prps / drps:>6.2f}")
        if row["c"] == 1:
            ok &= pp50 - dp50 <= 2.0
        if row["c"] >= 64:
            ok &= prps / drps >= 0.5
    print("targets (added p50 <= 2 ms at c=1, ratio >= 0.5 at c=64):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
