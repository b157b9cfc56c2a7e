"""Early stopping for majority voting: samples completed, accuracy and latency, side by side.

Runs the pipeline (``PipelineService``) against the simulated upstream over HTTP on the math
set's test split with the ``cot`` prompt and N=16, in these modes (``fanout.early_stop``,
``first_wave``, ``stop_risk`` as ``r``, and the fan-out strategy):

- ``all-N``: 16 concurrent n=1 calls, wait for all (``early_stop: off``) — the reference;
- ``at_once``: 16 concurrent n=1 calls, stop once the leader cannot be overtaken (exact);
- ``waves``: send the fewest samples that could decide the vote (8 of 16), then only as many
  as could still decide it if every sample in flight agreed with the leader (exact);
- ``waves f=.75``: the same with a first wave of 12 (less latency, more samples);
- ``waves n-calls``: waves where each wave is one call with ``n=wave size``;
- ``at_once r=.02`` / ``r=.05`` (the default), ``waves r=.05``: also stop once the estimated
  chance that the pending samples change the answer is at most ``r`` (approximate);
- ``provider-n``: one call with n=16;
- ``N=1``: one sample (the latency floor).

Requests carry a seed and sample ``i`` is sent with ``seed + i`` whenever it is sent, so every
n=1 mode sees the same samples as ``all-N``: the exact ones must give the same answer to every
question ("same answer"), the approximate ones may not; the n-call modes draw their own
samples. Prints per mode: completed and cancelled samples per request (mean), accuracy, same
answer, p50 and p90 latency, completion tokens per request, and ratios against ``all-N``.

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
# name -> (fanout.early_stop, first_wave, stop_risk, strategy, N or None for --n)
MODES: dict[str, tuple[str, float, float, str, int | None]] = {
    "all-N": ("off", 0.0, 0.0, "parallel", None),
    "at_once": ("at_once", 0.0, 0.0, "parallel", None),
    "waves": ("waves", 0.0, 0.0, "parallel", None),
    "waves f=.75": ("waves", 0.75, 0.0, "parallel", None),
    "waves n-calls": ("waves", 0.0, 0.0, "n", None),
    "at_once r=.02": ("at_once", 0.0, 0.02, "parallel", None),
    "at_once r=.05": ("at_once", 0.0, 0.05, "parallel", None),
    "waves r=.05": ("waves", 0.0, 0.05, "parallel", None),
    "provider-n": ("off", 0.0, 0.0, "n", None),
    "N=1": ("off", 0.0, 0.0, "parallel", 1),
}


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
                prompt: str, n: int, strategy: str, concurrency: int,
                seed: int) -> tuple[dict[str, float], list[str | None]]:
    svc = PipelineService(config, up, _Fixed(prompt, n), classifier=clf, strategy=strategy)
    sem = asyncio.Semaphore(concurrency)

    async def one(k: int, item: dict) -> tuple[str | None, float, dict, int]:
        req = parse_chat_request({"model": "sim-1", "messages": [
            {"role": "user", "content": item["input"]}], "iapo": {"task": "math"},
            "seed": seed + 1000 * k}, max_n=16)
        async with sem:
            t0 = time.perf_counter()
            res = await svc.complete(req, RequestContext(request_id="b"))
            dt = time.perf_counter() - t0
        got = extract_number(res.body["choices"][0]["message"]["content"])
        return got, dt, res.body["iapo"]["samples"], res.body["usage"]["completion_tokens"]

    out = await asyncio.gather(*(one(k, i) for k, i in enumerate(items)))
    await svc.close()
    lat = sorted(dt for _, dt, _, _ in out)
    return {
        "completed": statistics.mean(s["completed"] for _, _, s, _ in out),
        "cancelled": statistics.mean(s["cancelled"] for _, _, s, _ in out),
        "accuracy": sum(got == i["answer"] for (got, _, _, _), i in zip(out, items)) / len(out),
        "p50_ms": 1000 * statistics.median(lat),
        "p90_ms": 1000 * lat[int(0.9 * (len(lat) - 1))],
        "tokens": statistics.mean(t for _, _, _, t in out),
    }, [got for got, _, _, _ in out]


async def main(args: argparse.Namespace) -> None:
    sim = SimServer(SimSettings(seed=args.seed, ttft_s=args.ttft_ms / 1000,
                                tpot_s=args.tpot_ms / 1000, jitter=args.jitter))
    url = await sim.start()
    base = load_config(ROOT / "config.yaml")
    base = replace(base, models=tuple(replace(m, api_base=url) for m in base.models),
                   fanout=replace(base.fanout, per_request_concurrency=max(args.n, 1)))
    clf = TaskClassifier.from_config(base)
    up = DirectUpstream()
    items = _items(args.items)
    rows, answers = {}, {}
    try:
        for name in args.modes:
            early, first_wave, risk, strategy, n = MODES[name]
            config = replace(base, fanout=replace(base.fanout, early_stop=early,
                                                  first_wave=first_wave, stop_risk=risk))
            rows[name], answers[name] = await _mode(config, clf, up, items, args.prompt,
                                                    n or args.n, strategy, args.concurrency,
                                                    args.seed)
    finally:
        await up.close()
        await sim.stop()
    ref_name = args.modes[0]
    ref = rows[ref_name]
    print(f"math test split, {len(items)} questions, prompt {args.prompt}, N={args.n}, simulator "
          f"ttft {args.ttft_ms:g} ms, tpot {args.tpot_ms:g} ms, jitter {args.jitter:g}, "
          f"{args.concurrency} requests in flight; ratios and 'same answer' vs {ref_name}")
    head = (f"{'mode':<17}{'completed/req':>14}{'cancelled/req':>14}{'accuracy':>9}"
            f"{'same answer':>12}{'p50 ms':>8}{'p90 ms':>8}{'compl.tok/req':>14}"
            f"{'samples':>9}{'p50':>6}{'p90':>6}")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        same = sum(a == b for a, b in zip(answers[name], answers[ref_name]))
        print(f"{name:<17}{r['completed']:>14.2f}{r['cancelled']:>14.2f}{r['accuracy']:>9.3f}"
              f"{f'{same}/{len(items)}':>12}{r['p50_ms']:>8.0f}{r['p90_ms']:>8.0f}"
              f"{r['tokens']:>14.0f}{r['completed'] / ref['completed']:>9.2f}"
              f"{r['p50_ms'] / ref['p50_ms']:>6.2f}{r['p90_ms'] / ref['p90_ms']:>6.2f}")
    for name in rows:
        if name != ref_name and name not in ("provider-n", "N=1"):
            saved = 1 - rows[name]["completed"] / ref["completed"]
            diff = 100 * (rows[name]["accuracy"] - ref["accuracy"])
            print(f"{name}: {100 * saved:.1f}% fewer completed samples, accuracy {diff:+.1f} "
                  f"points, p50 x{rows[name]['p50_ms'] / ref['p50_ms']:.2f} vs {ref_name}")

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
    p.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                   help="the first is the reference for ratios")
    asyncio.run(main(p.parse_args()))
