"""Task classifier: held-out accuracy and time per request.

Trains the hashed n-gram model from the shipped config's task sets (as the proxy does at
start-up when no saved model exists), then classifies ``tests/data/classifier_heldout.jsonl``
(hand-varied requests not in the training data) and prints accuracy per task, the confusions,
and microseconds per request (median of repeated passes over the whole set, the full
``classify`` call: rules, features, model).

    python benchmarks/classifier.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from proxy.config import load_config
from proxy.pipeline.classify import TaskClassifier

ROOT = Path(__file__).resolve().parents[1]


def main(args: argparse.Namespace) -> None:
    config = load_config(ROOT / "config.yaml")
    t0 = time.perf_counter()
    clf = TaskClassifier.from_config(config)
    train_s = time.perf_counter() - t0
    rows = [json.loads(x) for x in (ROOT / "tests/data/classifier_heldout.jsonl").read_text().splitlines()
            if x.strip()]
    msgs = [[{"role": "user", "content": r["text"]}] for r in rows]
    got = [clf.classify(m) for m in msgs]
    per_task: Counter[str] = Counter(r["task"] for r in rows)
    right: Counter[str] = Counter(r["task"] for r, d in zip(rows, got) if d.task == r["task"])
    confusions = Counter((r["task"], d.task) for r, d in zip(rows, got) if d.task != r["task"])
    passes = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        for m in msgs:
            clf.classify(m)
        passes.append((time.perf_counter() - t) / len(msgs))
    print(f"trained in {train_s:.2f} s; held-out set: {len(rows)} requests")
    print(f"{'task':<18}{'n':>5}{'accuracy':>10}")
    for task, n in sorted(per_task.items()):
        print(f"{task:<18}{n:>5}{right[task] / n:>10.3f}")
    print(f"{'all':<18}{len(rows):>5}{sum(right.values()) / len(rows):>10.3f}")
    for (want, was), k in confusions.most_common():
        print(f"  confused {want} -> {was}: {k}")
    sources = Counter(d.source for d in got)
    print("decided by: " + ", ".join(f"{s} {k}" for s, k in sources.most_common()))
    print(f"time per request: median {1e6 * statistics.median(passes):.1f} us, "
          f"min {1e6 * min(passes):.1f} us ({args.repeat} passes)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=20)
    main(p.parse_args())
