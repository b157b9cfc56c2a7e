"""The official ``openai`` SDK against the proxy on the default config (embedded simulator)."""

from __future__ import annotations

import time
from dataclasses import replace

import openai
import pytest

MSG = [{"role": "user", "content": "What is 17 + 25?"}]
MSG_CHAT = [{"role": "user", "content": "Tell me about the history of suspension bridges."}]


async def test_chat_completion(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(model="sim-1", messages=MSG)
    assert resp.id.startswith("chatcmpl-")
    assert resp.object == "chat.completion"
    assert resp.model == "sim-1"
    assert resp.created > 1_600_000_000
    assert len(resp.choices) == 1
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content
    assert resp.usage is not None and resp.usage.total_tokens == (
        resp.usage.prompt_tokens + resp.usage.completion_tokens) > 0


async def test_stream_arrives_before_upstream_finished(start_proxy) -> None:
    url = await start_proxy(ttft_s=0.05, tpot_s=0.02)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        t0 = time.perf_counter()
        stream = await client.chat.completions.create(
            model="sim-1", messages=MSG_CHAT, stream=True, max_tokens=25,  # one sample: live
            stream_options={"include_usage": True})
        first_at, parts, usage = None, [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first_at = first_at or time.perf_counter() - t0
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        total = time.perf_counter() - t0
    # 25 tokens at 20 ms each take ~0.5 s upstream; the first chunk must not wait for them.
    assert len(parts) >= 20
    assert first_at is not None and total >= 0.4
    assert first_at < total / 3, (first_at, total)
    assert usage is not None and usage.completion_tokens == 25


async def test_n3(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(model="sim-1", messages=MSG, n=3, temperature=1.0)
    assert [c.index for c in resp.choices] == [0, 1, 2]
    assert all(c.message.content for c in resp.choices)


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["sim-1", "iapo-balanced", "iapo-quality", "iapo-frugal"]
    assert [(await client.models.retrieve(m.id)).id for m in models.data] == [m.id for m in models.data]


async def test_unknown_model_is_404_with_openai_body(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="no-such-model", messages=MSG)
    err = info.value
    assert err.status_code == 404
    assert err.code == "model_not_found"
    assert err.param == "model"
    assert err.type == "invalid_request_error"
    assert "no-such-model" in err.message
    assert err.response.headers.get("x-request-id")


async def test_stream_unknown_model_is_404_before_headers(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=MSG, stream=True)


async def test_upstream_rate_limit_reaches_sdk_as_429(start_proxy, sim_config) -> None:
    url = await start_proxy(sim_config(ttft_s=0.0, tpot_s=0.0, rate_limit_rate=1.0))
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="sim-1", messages=MSG)
    assert info.value.response.headers["retry-after"] == "1"


async def test_an_aggregated_stream_failing_before_its_first_keep_alive_keeps_its_429(
        start_proxy, sim_config) -> None:
    # every sample is rate-limited twice, 1 s apart (the simulator's retry-after): the samples
    # fail after ~2 s, past the 1 s keep-alive this proxy used to commit a 200 with
    config = sim_config(ttft_s=0.0, tpot_s=0.0, rate_limit_rate=1.0)
    config = replace(config, models=(replace(config.models[0], max_retries=2), *config.models[1:]))
    url = await start_proxy(config)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="sim-1", messages=[{"role": "user", "content": "What is 12 * 7?"}],
                stream=True, extra_headers={"x-iapo-task": "math"})
    assert info.value.response.headers["retry-after"] == "1"
