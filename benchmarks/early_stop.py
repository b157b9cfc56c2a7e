"""Early stopping for majority voting: samples completed, accuracy and latency, side by side.

Runs the pipeline (``PipelineService``) against the simulated upstream over HTTP on the math
set's test split with the ``cot`` prompt and N=16, in three modes:

- ``parallel+early-stop``: 16 concurrent n=1 calls, stop once the leader cannot be overtaken;
- ``parallel``: 16 concurrent n=1 calls, wait for all;
- ``provider-n``: one call with n=16.

Requests carry a seed, so every mode draws the same samples per question (``provider-n`` draws
its own: one seeded call with n=16); early stopping can then differ from waiting for all only
where arrival order breaks a tie. Prints per mode: completed samples per request (mean), samples cancelled, accuracy, p50 and
p90 latency, completion tokens per request, and the ratios against ``parallel``.

    python benchmarks/early_stop.py [--n 16] [--prompt cot] [--items 180] [--ttft-ms 60] [--tpot-ms 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from proxy.actions import Selection
from proxy.config import Action, Config, load_config
from proxy.pipeline.classify import TaskClassifier
from proxy.pipeline.extract import extract_number
from proxy.pipeline.service import PipelineService
from proxy.protocol import parse_chat_request
from proxy.serving import RequestContext
from proxy.sim.server import SimServer
from proxy.sim.settings import SimSettings
from proxy.upstream.direct import DirectUpstream

ROOT = Path(__file__).resolve().parents[1]


class _Fixed:
    def __init__(self, prompt: str, n: int) -> None:
        self.action = Action(prompt=prompt, n=n, aggregator="majority")

    def select(self, task: str, weights: Mapping[str, float]) -> Selection:
        return Selection(self.action, "bench", "1", "fixed")


def _items(k: int) -> list[dict]:
    rows = [json.loads(x) for x in (ROOT / "proxy/data/tasks/math.jsonl").read_text().splitlines()]
    test = [r for r in rows if r["split"] == "test"]
    return (test + [r for r in rows if r["split"] != "test"])[:k]


async def _mode(config: Config, clf: TaskClassifier, up: DirectUpstream, items: list[dict],
                prompt: str, n: int, strategy: str, early: bool, concurrency: int,
                seed: int) -> dict[str, float]:
    svc = PipelineService(config, up, _Fixed(prompt, n), classifier=clf, strategy=strategy,
                          early_stop=early)
    sem = asyncio.Semaphore(concurrency)

    async def one(k: int, item: dict) -> tuple[bool, float, dict, int]:
        req = parse_chat_request({"model": "sim-1", "messages": [
            {"role": "user", "content": item["input"]}], "iapo": {"task": "math"},
            "seed": seed + 1000 * k}, max_n=16)
        async with sem:
            t0 = time.perf_counter()
            res = await svc.complete(req, RequestContext(request_id="b"))
            dt = time.perf_counter() - t0
        ok = extract_number(res.body["choices"][0]["message"]["content"]) == item["answer"]
        return ok, dt, res.body["iapo"]["samples"], res.body["usage"]["completion_tokens"]

    out = await asyncio.gather(*(one(k, i) for k, i in enumerate(items)))
    await svc.close()
    lat = sorted(dt for _, dt, _, _ in out)
    return {
        "completed": statistics.mean(s["completed"] for _, _, s, _ in out),
        "cancelled": statistics.mean(s["cancelled"] for _, _, s, _ in out),
        "accuracy": sum(ok for ok, _, _, _ in out) / len(out),
        "p50_ms": 1000 * statistics.median(lat),
        "p90_ms": 1000 * lat[int(0.9 * (len(lat) - 1))],
        "tokens": statistics.mean(t for _, _, _, t in out),
    }


async def main(args: argparse.Namespace) -> None:
    sim = SimServer(SimSettings(seed=args.seed, ttft_s=args.ttft_ms / 1000,
                                tpot_s=args.tpot_ms / 1000, jitter=args.jitter))
    url = await sim.start()
    base = load_config(ROOT / "config.yaml")
    config = replace(base, models=tuple(replace(m, api_base=url) for m in base.models),
                     fanout=replace(base.fanout, per_request_concurrency=max(args.n, 1)))
    clf = TaskClassifier.from_config(config)
    up = DirectUpstream()
    items = _items(args.items)
    modes = [("parallel+early-stop", "parallel", True), ("parallel", "parallel", False),
             ("provider-n", "n", False)]
    rows = {}
    try:
        for name, strategy, early in modes:
            rows[name] = await _mode(config, clf, up, items, args.prompt, args.n, strategy, early,
                                     args.concurrency, args.seed)
    finally:
        await up.close()
        await sim.stop()
    ref = rows["parallel"]
    print(f"math test split, {len(items)} questions, prompt {args.prompt}, N={args.n}, simulator ttft "
          f"{args.ttft_ms:g} ms, tpot {args.tpot_ms:g} ms, jitter {args.jitter:g}")
    head = (f"{'mode':<22}{'completed/req':>14}{'cancelled/req':>14}{'accuracy':>10}"
            f"{'p50 ms':>9}{'p90 ms':>9}{'compl.tok/req':>14}{'samples vs par':>16}{'p50 vs par':>12}")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        print(f"{name:<22}{r['completed']:>14.2f}{r['cancelled']:>14.2f}{r['accuracy']:>10.3f}"
              f"{r['p50_ms']:>9.0f}{r['p90_ms']:>9.0f}{r['tokens']:>14.0f}"
              f"{r['completed'] / ref['completed']:>16.2f}{r['p50_ms'] / ref['p50_ms']:>12.2f}")
    saved = 1 - rows["parallel+early-stop"]["completed"] / ref["completed"]
    diff = 100 * (rows["parallel+early-stop"]["accuracy"] - ref["accuracy"])
    print(f"early stopping: {100 * saved:.1f}% fewer completed samples, accuracy "
          f"{diff:+.1f} points vs waiting for all {args.n}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--prompt", default="cot", help="prompt id from config.yaml")
    p.add_argument("--items", type=int, default=180)
    p.add_argument("--ttft-ms", type=float, default=60.0)
    p.add_argument("--tpot-ms", type=float, default=4.0)
    p.add_argument("--jitter", type=float, default=0.3)
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    p.add_argument("--seed", type=int, default=0)
    asyncio.run(main(p.parse_args()))
