"""Write the simulator's task sets (``proxy/data/tasks/*.jsonl``) from a fixed seed.

``python -m proxy.sim.make_tasks [--out DIR] [--seed S]`` rewrites ``math.jsonl`` (600 word
problems), ``multiple_choice.jsonl`` (300 questions) and ``summarize.jsonl`` (150 passages)
byte-identically for a given seed. Difficulty is the percentile rank of a raw score (steps, size
of the numbers, answer type) within its set, so it spreads evenly over [0, 1]. Splits: two
thirds train, one third test, by a seeded permutation.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from proxy.sim import gen_math, gen_text
from proxy.sim.tasks import TaskIndex, TaskItem

__all__ = ["DEFAULT_DIR", "build_all", "write_all", "main"]

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "tasks"
log = logging.getLogger(__name__)


def _finish(rows: list[dict[str, Any]], raw: list[float], rng: np.random.Generator) -> list[dict[str, Any]]:
    ranks = np.argsort(np.argsort(np.asarray(raw) + rng.random(len(raw)) * 1e-6))
    test = set(rng.permutation(len(rows))[: len(rows) // 3].tolist())
    for i, row in enumerate(rows):
        row["difficulty"] = round(float((ranks[i] + 0.5) / len(rows)), 4)
        row["split"] = "test" if i in test else "train"
    return rows


def build_math(rng: np.random.Generator, count: int = 600) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    raw: list[float] = []
    seen: set[str] = set()
    while len(rows) < count:
        tpl = gen_math.TEMPLATES[len(rows) % len(gen_math.TEMPLATES)]
        p = tpl(rng)
        if p.question in seen or p.answer <= 0:
            continue
        seen.add(p.question)
        kind = 0.0 if p.answer.denominator == 1 else 0.8
        raw.append(p.steps + 0.6 * math.log10(max(p.biggest, 1)) + kind + 0.8 * rng.random())
        rows.append({"id": f"math-{len(rows):04d}", "task": "math", "input": p.question,
                     "answer": gen_math.fmt_answer(p.answer),
                     "distractors": gen_math.distractors(p), "template": tpl.__name__})
    return _finish(rows, raw, rng)


def build_choice(rng: np.random.Generator, count: int = 300) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    raw: list[float] = []
    seen: set[str] = set()
    while len(rows) < count:
        tpl = gen_text.CHOICE_TEMPLATES[len(rows) % len(gen_text.CHOICE_TEMPLATES)]
        q = tpl(rng)
        if q.question in seen or len({q.correct, *q.wrong}) < 4:
            continue
        seen.add(q.question)
        text, letter, wrong = gen_text.format_choice(q, rng)
        raw.append(q.steps + 1.5 * rng.random())
        rows.append({"id": f"mc-{len(rows):04d}", "task": "multiple_choice", "input": text,
                     "answer": letter, "distractors": wrong, "template": tpl.__name__})
    return _finish(rows, raw, rng)


def build_summaries(rng: np.random.Generator, count: int = 150) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    raw: list[float] = []
    seen: set[str] = set()
    while len(rows) < count:
        tpl = gen_text.PASSAGE_TEMPLATES[len(rows) % len(gen_text.PASSAGE_TEMPLATES)]
        p = gen_text.make_passage(tpl(rng), rng)
        if p.text in seen:
            continue
        seen.add(p.text)
        raw.append(len(p.key_points) + len(p.text) / 200 + rng.random())
        rows.append({"id": f"sum-{len(rows):04d}", "task": "summarize",
                     "input": "Summarize the following text:\n" + p.text, "answer": None,
                     "key_points": list(p.key_points), "template": tpl.__name__})
    return _finish(rows, raw, rng)


def build_all(seed: int = 20240611) -> dict[str, list[dict[str, Any]]]:
    """All three sets as lists of JSON-ready rows, keyed by file stem."""
    ss = np.random.SeedSequence(seed)
    r_math, r_mc, r_sum = (np.random.default_rng(s) for s in ss.spawn(3))
    return {"math": build_math(r_math), "multiple_choice": build_choice(r_mc),
            "summarize": build_summaries(r_sum)}


def write_all(out_dir: Path = DEFAULT_DIR, seed: int = 20240611) -> dict[str, Path]:
    """Write the JSONL files, check every item is findable by the simulator's index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = build_all(seed)
    paths: dict[str, Path] = {}
    all_items: list[TaskItem] = []
    for stem, rows in sets.items():
        path = out_dir / f"{stem}.jsonl"
        body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows)
        path.write_text(body, encoding="utf-8")
        paths[stem] = path
        all_items += [TaskItem.from_json(r) for r in rows]
    index = TaskIndex(all_items)
    missing = [it.id for it in all_items if index.find(it.input) is not it]
    if missing:
        raise RuntimeError(f"items not uniquely findable: {missing[:5]}")
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for stem, path in write_all(args.out, args.seed).items():
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
