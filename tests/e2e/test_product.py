"""The shipped product as a user starts it: ``create_app(config)`` with no overrides is the
policy store + the inference-aware pipeline, on the embedded simulator; the SDK is the client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp
import openai
import pytest

from proxy.pipeline.service import PipelineService
from proxy.policy.web import POLICY_STORE
from proxy.server.state import SERVICE

REPO = Path(__file__).resolve().parents[2]
MATH = [{"role": "user", "content": json.loads(
    (REPO / "proxy/data/tasks/math.jsonl").read_text().splitlines()[0])["input"]}]


def _sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


async def test_default_app_serves_the_shipped_policy(start_proxy) -> None:
    url = await start_proxy()
    app = start_proxy.apps[-1]
    assert isinstance(app[SERVICE], PipelineService) and app[POLICY_STORE].current.policies
    async with _sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="sim-1", messages=MATH)
    resp = raw.parse()
    iapo = resp.model_extra["iapo"]
    assert iapo["task"] == "math" and iapo["policy"]["id"] == "default"
    assert iapo["weights_source"] == "default:balanced"
    assert raw.headers["x-iapo-policy"] == f"default@{iapo['policy']['version']}"
    assert iapo["samples"]["requested"] == iapo["action"]["n"] > 1


async def test_a_users_own_arithmetic_question_gets_the_right_number(start_proxy) -> None:
    url = await start_proxy()
    async with _sdk(url) as client:
        resp = await client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": "What is 12 + 30?"}])
    assert resp.model_extra["iapo"]["task"] == "math"
    assert re.search(r"\b42\b", resp.choices[0].message.content or "")  # the vote's answer


async def test_profile_aliases_are_models_and_pick_their_profile(start_proxy) -> None:
    url = await start_proxy()
    async with _sdk(url) as client:
        ids = [m.id for m in (await client.models.list()).data]
        frugal = await client.chat.completions.create(model="iapo-frugal", messages=MATH)
        quality = await client.chat.completions.create(model="iapo-quality", messages=MATH)
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="iapo-nonexistent", messages=MATH)
    assert {"iapo-balanced", "iapo-quality", "iapo-frugal"} <= set(ids)
    assert frugal.model == "iapo-frugal"
    a, b = frugal.model_extra["iapo"], quality.model_extra["iapo"]
    assert a["weights_source"] == "model:frugal" and b["weights_source"] == "model:quality"
    assert a["action"]["n"] < b["action"]["n"]  # the frugal profile pays for fewer samples
    assert info.value.body["code"] == "model_not_found"


async def test_stream_with_many_samples_keeps_alive_then_streams_the_answer(start_proxy,
                                                                           sim_config) -> None:
    config = sim_config(ttft_s=1.3, tpot_s=0.0)  # sampling outlasts one keep-alive period
    url = await start_proxy(replace(config, server=replace(config.server, stream_keepalive_s=1.0)))
    body = {"model": "iapo-quality", "messages": MATH, "stream": True,
            "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/chat/completions", json=body) as r:
        assert r.status == 200 and r.headers["x-iapo-action"].endswith("majority")
        lines = [line.decode().rstrip("\n") async for line in r.content if line.strip()]
    assert lines[0] == ": keep-alive"  # an SSE comment: sent while the samples are drawn
    events = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    iapo = next(e["iapo"] for e in events if "iapo" in e)
    assert text and iapo["samples"]["completed"] >= 1 and events[-1]["usage"]["total_tokens"] > 0
    async with _sdk(url) as client:  # the SDK ignores the comments and reads the same stream
        stream = await client.chat.completions.create(model="iapo-quality", messages=MATH,
                                                      stream=True)
        parts = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(p or "" for p in parts)


def test_serve_refuses_an_invalid_policy_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    # the first context's action gets n: 0 (whatever N the shipped, trained policy chose)
    bad.write_text(re.sub(r"(action: \{prompt: [\w-]+, )n: \d+", r"\1n: 0",
                          (REPO / "policies/default.yaml").read_text(), count=1))
    config = tmp_path / "config.yaml"
    config.write_text((REPO / "config.yaml").read_text().replace("policies/default.yaml", str(bad))
                      .replace("dataset: proxy/", f"dataset: {REPO}/proxy/"))
    proc = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config),
                           "--port", "0"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 2, proc.stderr
    assert "contexts[0].action.n" in proc.stderr and "Traceback" not in proc.stderr
