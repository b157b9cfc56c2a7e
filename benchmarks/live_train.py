"""Live training end to end: ``iapo train`` on a task against the simulated upstream, then the
trained policy served by the real proxy app on the held-out questions, against N=1 with the
default prompt.

1. ``iapo train --task TASK --budget B`` (all library prompts, all profiles, PSST) with a fresh
   sample cache, the embedded simulator at ``--ttft-s`` / ``--tpot-s`` latency (the config's
   defaults, 0.35 s + 12 ms per token, are close to a hosted model); wall time, samples,
   upstream calls, tokens and dollars.
2. The proxy app (``create_app``: policy store, classifier, pipeline) serving that policy, and
   again serving a policy whose every context is ``plain`` with N=1; every held-out question
   (never pulled in training) sent once per profile (``iapo.profile``), ``--clients`` at a time.
   Per row: accuracy (extracted answer == reference), the action, samples and dollars per
   request, p50 latency, wall time; ratios against the N=1 row.

    python benchmarks/live_train.py [--task math] [--budget 5000] [--concurrency 64]
                                    [--ttft-s 0.35] [--tpot-s 0.012] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from proxy.cli import main as iapo
from proxy.config import Config, load_config
from proxy.pipeline.extract import extractor_for
from proxy.server.app import create_app

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp: Path, policy: Path, ttft_s: float, tpot_s: float) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["simulator"].update(ttft_s=ttft_s, tpot_s=tpot_s)
    for task in data["tasks"]:
        if "dataset" in task:
            task["dataset"] = str(ROOT / task["dataset"])
    data["policies"]["paths"] = [str(policy)]
    data["classifier"] = {**data.get("classifier", {}), "path": str(ROOT / "policies" / "classifier.npz")}
    path = tmp / f"config-{policy.stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def n1_policy(trained: Path, out: Path, default_prompt: str) -> None:
    doc = yaml.safe_load(trained.read_text())
    doc["id"], doc["prompts"] = "n1-default", [default_prompt]
    doc["contexts"] = [{"task": c["task"], "profile": c["profile"], "weights": c["weights"],
                        "action": {"prompt": default_prompt, "n": 1, "aggregator": "majority"}}
                       for c in doc["contexts"]]
    out.write_text(yaml.safe_dump(doc, sort_keys=False))


async def serve_and_ask(config: Config, items: list[dict[str, Any]], profile: str, task: str,
                        clients: int) -> dict[str, Any]:
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    extract = extractor_for(config.task(task).extractor if config.task(task) else None)
    sem = asyncio.Semaphore(clients)
    out: list[tuple[bool, float, int, float, str]] = []
    try:
        async with aiohttp.ClientSession() as http:
            async def one(item: dict[str, Any]) -> None:
                body = {"model": config.models[0].name,
                        "messages": [{"role": "user", "content": item["input"]}],
                        "iapo": {"profile": profile}}
                async with sem:
                    t0 = time.perf_counter()
                    async with http.post(url, json=body) as resp:
                        doc = await resp.json()
                    dt = time.perf_counter() - t0
                if resp.status != 200:
                    raise RuntimeError(f"proxy answered {resp.status}: {doc}")
                rep = doc["iapo"]
                answer = extract(doc["choices"][0]["message"]["content"] or "")
                action = f"{rep['action']['prompt']} n={rep['action']['n']}"
                out.append((answer == extract(str(item["answer"])), rep["cost_usd"],
                            rep["samples"]["completed"], dt, action))

            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in items))
            wall = time.perf_counter() - t0
    finally:
        await runner.cleanup()
    return {"accuracy": sum(o[0] for o in out) / len(out), "usd": sum(o[1] for o in out) / len(out),
            "samples": sum(o[2] for o in out) / len(out), "p50_s": statistics.median(o[3] for o in out),
            "wall_s": wall, "actions": sorted({o[4] for o in out})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="math")
    ap.add_argument("--budget", type=int, default=5000)
    ap.add_argument("--algorithm", default="psst")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--ttft-s", type=float, default=0.35)
    ap.add_argument("--tpot-s", type=float, default=0.012)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        policy, baseline = tmp / "trained.yaml", tmp / "n1.yaml"
        cfg_path = write_config(tmp, policy, args.ttft_s, args.tpot_s)
        t0 = time.perf_counter()
        rc = iapo(["train", "--config", str(cfg_path), "--task", args.task, "--budget", str(args.budget),
                   "--algorithm", args.algorithm, "--concurrency", str(args.concurrency), "--seed", str(args.seed),
                   "--cache", str(tmp / "cache"), "--out", str(policy), "--quiet"])
        train_wall = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"iapo train failed with exit code {rc}")
        trained_doc = yaml.safe_load(policy.read_text())
        from proxy.train.policy_out import default_prompt
        from proxy.train.taskset import load_task_set

        config = load_config(cfg_path)
        n1_policy(policy, baseline, default_prompt(config))
        task_cfg = config.task(args.task)
        assert task_cfg is not None
        heldout = [{"input": it.input, "answer": it.answer} for it in load_task_set(task_cfg, seed=args.seed).heldout]
        spent = trained_doc["provenance"]["budget"]
        print(f"train: {args.task}, budget {args.budget}, {args.algorithm}, concurrency {args.concurrency}, "
              f"simulator ttft {args.ttft_s} s tpot {args.tpot_s} s")
        print(f"train: wall {train_wall:.1f} s, samples {spent['samples']}, tokens {spent['tokens']}, "
              f"cost ${spent['cost_usd']:.4f}")
        rows = []
        for profile in [c["profile"] for c in trained_doc["contexts"]]:
            for name, path in (("trained", policy), ("N=1 default", baseline)):
                cfg = load_config(write_config(tmp, path, args.ttft_s, args.tpot_s))
                r = asyncio.run(serve_and_ask(cfg, heldout, profile, args.task, args.clients))
                rows.append({"profile": profile, "policy": name, **r})
        head = (f"{'profile':<10}{'policy':<13}{'action':<22}{'accuracy':>9}{'samples/req':>12}"
                f"{'$/req':>10}{'p50 s':>7}{'wall s':>8}{'acc ratio':>10}{'$ ratio':>8}")
        print(f"held-out: {len(heldout)} questions through the proxy, {args.clients} clients")
        print(head)
        print("-" * len(head))
        for r in rows:
            base = next(b for b in rows if b["profile"] == r["profile"] and b["policy"] == "N=1 default")
            print(f"{r['profile']:<10}{r['policy']:<13}{','.join(r['actions']):<22}{r['accuracy']:>9.3f}"
                  f"{r['samples']:>12.2f}{r['usd']:>10.6f}{r['p50_s']:>7.2f}{r['wall_s']:>8.1f}"
                  f"{r['accuracy'] / base['accuracy']:>10.2f}{r['usd'] / base['usd']:>8.1f}")
        if args.json is not None:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "train": {"wall_s": train_wall, **spent}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
