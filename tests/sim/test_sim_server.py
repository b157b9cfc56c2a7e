"""The simulator over real HTTP: OpenAI shapes, streaming, n, seeds, errors, faults, cancellation."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import aiohttp
import openai
import pytest

from proxy.sim.server import SIM_STATE, SimServer
from proxy.sim.settings import SimSettings

Q = "Nils buys 6 books at $31 each and 10 bookmarks at $8 each. How many dollars does Nils spend in total?"


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "any-name", "messages": [{"role": "user", "content": Q}], **kw}


def root(sim: SimServer) -> str:
    return sim.url.removesuffix("/v1")


async def test_completion_with_the_openai_client(sim: SimServer) -> None:
    async with openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0) as client:
        resp = await client.chat.completions.create(
            model="gpt-whatever", messages=[{"role": "system", "content": "Think step by step."},
                                            {"role": "user", "content": Q}], n=3, temperature=1.0)
    assert resp.id.startswith("chatcmpl-") and resp.object == "chat.completion"
    assert resp.model == "gpt-whatever" and len(resp.choices) == 3
    assert [c.index for c in resp.choices] == [0, 1, 2]
    for c in resp.choices:
        assert c.message.role == "assistant" and "The answer is" in (c.message.content or "")
        assert c.finish_reason == "stop"
    u = resp.usage
    assert u is not None and u.prompt_tokens > 20 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.completion_tokens == sum(len((c.message.content or "").split()) for c in resp.choices)


async def test_streaming_is_paced_and_complete() -> None:
    async with SimServer(SimSettings(ttft_s=0.1, tpot_s=0.02)) as sim:
        async with openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0) as client:
            t0 = time.perf_counter()
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "system", "content": "Think step by step."},
                                     {"role": "user", "content": Q}],
                stream=True, stream_options={"include_usage": True})
            arrivals: list[float] = []
            text, usage, reasons = "", None, []
            async for chunk in stream:
                if chunk.choices:
                    arrivals.append(time.perf_counter() - t0)
                    text += chunk.choices[0].delta.content or ""
                    reasons.append(chunk.choices[0].finish_reason)
                if chunk.usage is not None:
                    usage = chunk.usage
            total = time.perf_counter() - t0
    n_tokens = len(text.split())
    assert "The answer is" in text and reasons[-1] == "stop"
    assert usage is not None and usage.completion_tokens == n_tokens
    assert 0.08 < arrivals[0] < total - 0.3  # first chunk after ttft, well before the end
    assert total >= 0.1 + (n_tokens - 1) * 0.02 * 0.9
    gaps = [b - a for a, b in zip(arrivals[:-2], arrivals[1:-1])]
    assert sorted(gaps)[len(gaps) // 2] > 0.012  # median gap close to tpot


async def test_streaming_n_interleaves_choices(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with http.post(sim.url + "/chat/completions", json=body(n=3, stream=True)) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = (await r.read()).decode()
    events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e.strip()]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    texts = ["", "", ""]
    for ch in chunks:
        assert ch["object"] == "chat.completion.chunk" and "usage" not in ch
        for c in ch["choices"]:
            texts[c["index"]] += c["delta"].get("content", "")
    assert {c["index"] for c in chunks[0]["choices"]} == {0, 1, 2}
    assert all(t.strip() for t in texts)


async def test_seed_reproduces_and_no_seed_varies(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async def contents(payload: dict[str, Any]) -> list[str]:
        async with http.post(sim.url + "/chat/completions", json=payload) as r:
            return [c["message"]["content"] for c in (await r.json())["choices"]]

    a = await contents(body(n=8, seed=42))
    assert a == await contents(body(n=8, seed=42))
    assert a != await contents(body(n=8, seed=43))
    unseeded = [tuple(await contents(body(n=8))) for _ in range(3)]
    assert len(set(unseeded)) > 1


async def test_max_tokens_and_stop(sim: SimServer, http: aiohttp.ClientSession) -> None:
    cot = {"messages": [{"role": "system", "content": "Think step by step."}, {"role": "user", "content": Q}]}
    async with http.post(sim.url + "/chat/completions", json={**body(), **cot, "max_tokens": 5}) as r:
        data = await r.json()
    ch = data["choices"][0]
    assert ch["finish_reason"] == "length" and len(ch["message"]["content"].split()) == 5
    assert data["usage"]["completion_tokens"] == 5
    async with http.post(sim.url + "/chat/completions",
                         json={**body(), **cot, "stop": ["The answer"], "temperature": 0}) as r:
        ch = (await r.json())["choices"][0]
    assert ch["finish_reason"] == "stop" and "The answer" not in ch["message"]["content"]


@pytest.mark.parametrize("payload, param", [
    (b"{not json", None),
    (json.dumps({"model": "m"}).encode(), "messages"),
    (json.dumps({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]}).encode(), "messages[0]"),
    (json.dumps(body(temperature=3)).encode(), "temperature"),
    (json.dumps(body(n=0)).encode(), "n"),
    (json.dumps(body(stop=5)).encode(), "stop"),
])
async def test_bad_requests_get_openai_400(sim: SimServer, http: aiohttp.ClientSession,
                                           payload: bytes, param: str | None) -> None:
    async with http.post(sim.url + "/chat/completions", data=payload,
                         headers={"content-type": "application/json"}) as r:
        assert r.status == 400
        err = (await r.json())["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]
    assert sim.stats.bad_requests == 1


async def test_openai_client_sees_400_as_bad_request(sim: SimServer) -> None:
    async with openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 temperature=5)


async def test_injected_faults(sim: SimServer, http: aiohttp.ClientSession) -> None:
    url = sim.url + "/chat/completions"
    async with http.post(url, json=body(), headers={"x-sim-fault": "error"}) as r:
        assert r.status == 500 and (await r.json())["error"]["type"] == "server_error"
    async with http.post(url, json=body(), headers={"x-sim-fault": "rate_limit"}) as r:
        assert r.status == 429 and int(r.headers["retry-after"]) >= 1
        assert (await r.json())["error"]["code"] == "rate_limit_exceeded"
    async with http.post(url, json=body(), headers={"x-sim-fault": "malformed"}) as r:
        assert r.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await r.text())
    for stream in (False, True):
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(url, json=body(stream=stream), headers={"x-sim-fault": "drop"}) as r:
                await r.read()
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(url, json=body(), headers={"x-sim-fault": "slow"},
                             timeout=aiohttp.ClientTimeout(total=0.3)) as r:
            await r.read()
    async with http.post(url, json=body(), headers={"x-sim-fault": "error", "x-sim-fault-rate": "0"}) as r:
        assert r.status == 200
    async with http.post(url, json=body(), headers={"x-sim-fault": "meteor"}) as r:
        assert r.status == 400
    await asyncio.sleep(0.05)
    s = sim.stats
    assert s.faults == {"error": 1, "rate_limit": 1, "slow": 1, "drop": 2, "malformed": 1}
    assert s.errors_injected == 6 and s.completed == 1


async def test_fault_rates_from_settings_and_header() -> None:
    async with SimServer(SimSettings(seed=3, error_rate=0.3)) as sim, aiohttp.ClientSession() as http:
        async def statuses(headers: dict[str, str]) -> list[int]:
            out = []
            for _ in range(100):
                async with http.post(sim.url + "/chat/completions", json=body(), headers=headers) as r:
                    out.append(r.status)
            return out

        s = await statuses({})
        assert 15 <= s.count(500) <= 45 and s.count(200) == 100 - s.count(500)
        s = await statuses({"x-sim-fault-rate": "rate_limit=0.5"})
        assert 35 <= s.count(429) <= 65 and 500 not in s


async def test_client_disconnect_counts_as_cancelled(sim: SimServer, http: aiohttp.ClientSession) -> None:
    url, slow = sim.url + "/chat/completions", {"x-sim-ttft-ms": "5000"}
    task = asyncio.create_task(http.post(url, json=body(), headers=slow))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if sim.stats.in_flight == 1:
            break
    task.cancel()  # the client gives up before any response byte
    with pytest.raises(asyncio.CancelledError):
        await task
    resp = await http.post(url, json=body(stream=True), headers=slow)
    assert resp.status == 200  # SSE headers are out, the first chunk is not
    resp.close()  # the client hangs up mid-stream
    for _ in range(200):
        if sim.stats.cancelled == 2 and sim.stats.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert sim.stats.cancelled == 2 and sim.stats.in_flight == 0 and sim.stats.completed == 0


async def test_latency_headers_and_n_is_concurrent(sim: SimServer, http: aiohttp.ClientSession) -> None:
    t0 = time.perf_counter()
    async with http.post(sim.url + "/chat/completions", json=body(n=8),
                         headers={"x-sim-ttft-ms": "200", "x-sim-tpot-ms": "5"}) as r:
        data = await r.json()
    took = time.perf_counter() - t0
    longest = max(len(c["message"]["content"].split()) for c in data["choices"])
    assert 0.2 + longest * 0.005 * 0.9 <= took < 0.2 + longest * 0.005 * 3 + 0.3  # not n times


async def test_models_health_stats_reset_and_reward(sim: SimServer, http: aiohttp.ClientSession) -> None:
    async with openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["sim-1"]
    async with http.get(root(sim) + "/health") as r:
        assert (await r.json())["status"] == "ok"
    async with http.post(sim.url + "/chat/completions", json=body()) as r:
        assert r.status == 200
    async with http.get(root(sim) + "/sim/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 1 and stats["completed"] == 1 and stats["in_flight"] == 0
    async with http.post(root(sim) + "/sim/reset") as r:
        assert (await r.json())["requests"] == 0
    assert sim.stats.requests == 0

    async def reward(prompt: str, response: str) -> float:
        async with http.post(sim.url + "/reward", json={"prompt": prompt, "response": response}) as r:
            assert r.status == 200
            return float((await r.json())["score"])

    assert await reward(Q, "The answer is 266.") > await reward(Q, "The answer is 186.")
    summ = next(it for it in sim.app[SIM_STATE].model.index.items if it.task == "summarize")
    full = await reward(summ.input, ". ".join(summ.key_points))
    half = await reward(summ.input, summ.key_points[0])
    assert full == 1.0 and 0 < half < 1.0
    async with http.post(sim.url + "/reward", json={"prompt": 3}) as r:
        assert r.status == 400 and "error" in await r.json()
    async with http.get(sim.url + "/nowhere") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "404"


async def test_prompter_and_judge_over_http(sim: SimServer) -> None:
    meta = ("Rewrite the following request so that a language model answers it as accurately as "
            "possible. Keep every fact and number. Return only the rewritten request.\n\nRequest:\n")
    judge = "Rate the response on a scale of 1 to 10.\n\nRequest:\n{q}\n\nResponse:\n{r}\n\nReply with 'Score: <n>'."
    async with openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0) as client:
        rw = await client.chat.completions.create(model="sim-1", n=4,
                                                  messages=[{"role": "user", "content": meta + Q}])
        for c in rw.choices:
            assert (c.message.content or "").startswith(Q)
        scores = {}
        for answer in ("266", "186"):
            resp = await client.chat.completions.create(
                model="sim-1", n=16, seed=5,
                messages=[{"role": "user", "content": judge.format(q=Q, r=f"The answer is {answer}.")}])
            parsed = [int(m.group(1)) for c in resp.choices
                      if (m := re.fullmatch(r"Score: (\d+)", c.message.content or ""))]
            assert len(parsed) >= 12
            scores[answer] = sum(parsed) / len(parsed)
    assert scores["266"] > 8 and scores["186"] < 3
