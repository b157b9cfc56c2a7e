"""The prompt x scale interaction the whole product relies on, measured over HTTP.

With the config's prompts on the math set: ``expert_direct`` (consistent errors) is the better
prompt with one sample, ``cot`` (diverse errors) the better one under majority voting of 16, and
the ``plain`` prompt gains at least 8 points from voting over 9 samples. Each comparison is
paired per question and must exceed 3 standard errors.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import yaml

from proxy.sim.server import SimServer
from proxy.sim.settings import DEFAULT_TASKS_DIR
from proxy.sim.tasks import TaskItem, load_tasks

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def extract(text: str) -> Fraction | None:
    """The last number of a reply, thousands separators dropped; None if there is none."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return Fraction(found[-1].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def majority(answers: list[Fraction | None]) -> Fraction | None:
    """Most frequent parsed answer; ties go to the one seen first; None if nothing parsed."""
    votes = [a for a in answers if a is not None]
    if not votes:
        return None
    counts = Counter(votes)
    top = max(counts.values())
    return next(a for a in votes if counts[a] == top)


def messages(prompt: dict[str, Any], question: str) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": prompt["system"]}] if prompt.get("system") else []
    for ex in prompt.get("examples", []):
        msgs += [{"role": "user", "content": ex["input"]}, {"role": "assistant", "content": ex["output"]}]
    return msgs + [{"role": "user", "content": question + prompt.get("suffix", "")}]


def paired_z(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of a - b and that mean in standard errors."""
    d = a - b
    return float(d.mean()), float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))


async def sample_all(url: str, prompt: dict[str, Any], items: list[TaskItem], n: int) -> list[list[str]]:
    """n samples per question, one request each (seeded by position), 32 requests at a time."""
    gate = asyncio.Semaphore(32)

    async with aiohttp.ClientSession() as http:
        async def one(i: int, item: TaskItem) -> list[str]:
            payload = {"model": "sim-1", "messages": messages(prompt, item.input), "n": n,
                       "temperature": 1.0, "seed": 1000 + i}
            async with gate, http.post(url + "/chat/completions", json=payload) as r:
                assert r.status == 200
                data = await r.json()
            return [c["message"]["content"] for c in data["choices"]]

        return list(await asyncio.gather(*(one(i, it) for i, it in enumerate(items))))


@pytest.fixture(scope="module")
def prompts() -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in yaml.safe_load(CONFIG.read_text())["prompts"]}


@pytest.fixture(scope="module")
def math_items() -> list[TaskItem]:
    return load_tasks(DEFAULT_TASKS_DIR / "math.jsonl")


def score(replies: list[list[str]], items: list[TaskItem], n_vote: int) -> dict[str, np.ndarray]:
    first, mean, vote = [], [], []
    for outs, item in zip(replies, items):
        truth = Fraction(item.answer or "nan")
        ok = [extract(o) == truth for o in outs]
        first.append(ok[0])
        mean.append(np.mean(ok))
        vote.append(majority([extract(o) for o in outs[:n_vote]]) == truth)
    return {"first": np.array(first, float), "mean": np.array(mean, float), "vote": np.array(vote, float)}


async def test_prompt_scale_interaction(sim: SimServer, prompts: dict[str, dict[str, Any]],
                                        math_items: list[TaskItem]) -> None:
    assert len(math_items) >= 200
    a_out = await sample_all(sim.url, prompts["expert_direct"], math_items, 16)
    b_out = await sample_all(sim.url, prompts["cot"], math_items, 16)
    a, b = score(a_out, math_items, 16), score(b_out, math_items, 16)
    gain1, z1 = paired_z(a["first"], b["first"])
    gain1_mean, z1_mean = paired_z(a["mean"], b["mean"])
    gain16, z16 = paired_z(b["vote"], a["vote"])
    # A is the better single-sample prompt, whether N=1 is read off the first sample or all 16.
    assert gain1 >= 0.05 and z1 > 3, (gain1, z1)
    assert gain1_mean >= 0.05 and z1_mean > 3, (gain1_mean, z1_mean)
    # B is the better prompt under majority voting of 16.
    assert gain16 >= 0.05 and z16 > 3, (gain16, z16)
    # and voting helps B far more than A (diverse versus consistent errors).
    assert b["vote"].mean() - b["mean"].mean() > 2 * (a["vote"].mean() - a["mean"].mean())


async def test_plain_prompt_gains_from_majority_vote(sim: SimServer, prompts: dict[str, dict[str, Any]],
                                                     math_items: list[TaskItem]) -> None:
    out = await sample_all(sim.url, prompts["plain"], math_items, 9)
    s = score(out, math_items, 9)
    gain, z = paired_z(s["vote"], s["first"])
    assert gain >= 0.08 and z > 3, (gain, z)
    unparsable = np.mean([extract(o) is None for outs in out for o in outs])
    assert 0.05 < unparsable < 0.25
