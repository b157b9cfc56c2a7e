"""Streaming errors, client disconnects, pass-through, auth, /ready and /metrics."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp
import openai
import pytest

from proxy.config import ApiKeyConfig, AuthConfig, ModelConfig
from proxy.errors import UpstreamError
from proxy.serving import ChatResult, PassthroughService
from proxy.server.state import CONFIG, SIM, UPSTREAM
from proxy.upstream.base import Completion, Usage

MSG = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


def _chunk(text: str) -> dict:
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "sim-1",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


class FailsMidStream:
    async def complete(self, req, ctx):
        raise AssertionError("not used")

    async def stream(self, req, ctx):
        yield _chunk("Hello")
        raise UpstreamError("upstream 'sim-1' stream broke")


async def test_error_after_sse_headers_is_an_sse_error_event(start_proxy) -> None:
    url = await start_proxy(service_factory=lambda app: FailsMidStream())
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG, "stream": True}) as r:
            assert r.status == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-request-id"]
            text = await r.text()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Hello"
    assert json.loads(events[1])["error"]["type"] == "upstream_error"
    assert "[DONE]" not in text and len(events) == 2
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(model="sim-1", messages=MSG, stream=True)
        with pytest.raises(openai.APIError, match="stream broke"):
            async for _ in stream:
                pass


async def test_client_disconnect_cancels_upstream(start_proxy) -> None:
    url = await start_proxy(ttft_s=0.0, tpot_s=0.05)
    sim = start_proxy.apps[-1][SIM]
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG, "stream": True,
                                           "max_tokens": 200}) as r:
            await r.content.readline()  # first chunk arrived; now hang up
    for _ in range(100):
        if sim.stats.cancelled and not sim.stats.in_flight:
            break
        await asyncio.sleep(0.02)
    assert sim.stats.cancelled == 1 and sim.stats.in_flight == 0 and sim.stats.completed == 0


class Recorder:
    """A fake :class:`Upstream` that records the bodies it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    async def complete(self, model, request, *, timeout_s=None):
        self.bodies.append(dict(request))
        body = {"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": "up",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                             "finish_reason": "stop"}]}
        return Completion(body=body, usage=Usage(3, 1), cost_usd=0.0)

    async def stream(self, model, request, *, timeout_s=None):
        self.bodies.append(dict(request))
        yield _chunk("ok")

    def cost(self, model, usage):
        return 0.0

    async def ready(self, model):
        return True

    async def close(self):
        pass


async def test_unknown_fields_pass_through_but_iapo_never(start_proxy) -> None:
    rec = Recorder()
    url = await start_proxy(upstream=rec)
    body = {"model": "sim-1", "messages": MSG, "iapo": {"task": "math"}, "logit_bias": {"1": 2},
            "response_format": {"type": "json_object"}, "temperature": 0.5, "max_tokens": 9}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json=body) as r:
            got = await r.json()
        async with s.post(url + CHAT, json={**body, "stream": True}) as r:
            await r.read()
    # every sample of the policy's action (math, balanced: several) is one recorded call
    samples = got["iapo"]["samples"]["completed"]
    assert got["model"] == "sim-1" and len(rec.bodies) == 2 * samples  # the stream samples too
    assert got["usage"] == {"prompt_tokens": 3 * samples, "completion_tokens": samples,
                            "total_tokens": 4 * samples}
    for sent in rec.bodies:
        assert "iapo" not in sent
        assert sent["logit_bias"] == {"1": 2} and sent["response_format"] == {"type": "json_object"}
        assert sent["temperature"] == 0.5 and sent["max_tokens"] == 9 and sent["model"] == "sim-1"


async def test_auth_required(start_proxy, repo_config, monkeypatch) -> None:
    monkeypatch.setenv("TEST_IAPO_KEY", "sk-good")
    config = replace(repo_config, auth=AuthConfig(require_api_key=True,
                                                  keys=(ApiKeyConfig("TEST_IAPO_KEY", "frugal"),)))
    seen = []

    class Spy(PassthroughService):
        async def complete(self, req, ctx):
            seen.append(ctx.profile)
            return ChatResult(body={"ok": True}, headers={"x-iapo-test": "1"})

    url = await start_proxy(config, service_factory=lambda app: Spy(app[CONFIG], app[UPSTREAM]))
    body = {"model": "sim-1", "messages": MSG}
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer sk-bad"}, {"Authorization": "Basic sk-good"}):
            async with s.post(url + CHAT, json=body, headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["error"]["type"] == "authentication_error"
        async with s.post(url + CHAT, json=body, headers={"Authorization": "Bearer sk-good"}) as r:
            assert r.status == 200 and r.headers["x-iapo-test"] == "1"
        for path in ("/v1/models", "/v1/models/sim-1"):
            async with s.get(url + path) as r:
                assert r.status == 401, path
            async with s.get(url + path, headers={"Authorization": "Bearer sk-good"}) as r:
                assert r.status == 200, path
    assert seen == ["frugal"]


async def test_metric_labels_take_only_configured_model_names(start_proxy) -> None:
    url = await start_proxy()
    junk = "x" * 100_000
    async with aiohttp.ClientSession() as s:
        for model in (junk + "1", junk + "2", "iapo-balanced"):
            async with s.post(url + CHAT, json={"model": model, "messages": MSG}) as r:
                assert r.status in (200, 404)
        async with s.post(url + CHAT, json={"model": junk, "messages": "not a list"}) as r:
            assert r.status == 400
        async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG,
                                            "iapo": {"task": junk}}) as r:
            assert r.status == 400
        async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG},
                          headers={"x-iapo-task": junk[:4000]}) as r:
            assert r.status == 400
        async with s.get(url + "/metrics") as r:
            text = await r.text()
    assert junk not in text and len(text) < 100_000
    assert 'iapo_requests_total{model="",status="404"} 2.0' in text
    assert 'iapo_requests_total{model="",status="400"} 1.0' in text
    assert 'iapo_requests_total{model="iapo-balanced",status="200"} 1.0' in text
    assert 'iapo_requests_total{model="sim-1",status="400"} 2.0' in text


async def test_ready_and_metrics(start_proxy, repo_config) -> None:
    url = await start_proxy()
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/ready") as r:
            assert r.status == 200 and (await r.json())["models"] == {"sim-1": True}
        async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG}) as r:
            assert r.status == 200
        async with s.post(url + CHAT, json={"model": "nope", "messages": MSG}) as r:
            assert r.status == 404
        async with s.get(url + "/metrics") as r:
            assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
            text = await r.text()
    assert 'iapo_requests_total{model="sim-1",status="200"} 1.0' in text
    assert 'iapo_requests_total{model="",status="404"} 1.0' in text
    assert 'iapo_upstream_calls_total{model="sim-1",outcome="ok"} 1.0' in text
    assert 'iapo_tokens_total{kind="completion",model="sim-1"}' in text
    assert 'iapo_cost_usd_total{model="sim-1"}' in text

    assert "nope" not in text

    dead = ModelConfig(name="gone", model="openai/gone", api_base="http://127.0.0.1:9/v1")
    url = await start_proxy(replace(repo_config, models=(*repo_config.models, dead)))
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/ready") as r:
            assert r.status == 503
            body = await r.json()
    assert body["models"] == {"sim-1": True, "gone": False}
    assert "gone" in body["error"]["message"]


async def test_request_timeout_is_504(start_proxy, repo_config) -> None:
    config = replace(repo_config, server=replace(repo_config.server, request_timeout_s=0.2))
    url = await start_proxy(replace(config, simulator=replace(config.simulator, ttft_s=2.0)))
    async with aiohttp.ClientSession() as s:
        for stream in (False, True):
            async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG,
                                               "stream": stream}) as r:
                assert r.status == 504
                assert (await r.json())["error"]["type"] == "timeout_error"


async def test_plugins_start_before_the_service_factory(start_proxy) -> None:
    from aiohttp import web

    events: list[str] = []

    def plugin(app: web.Application) -> None:
        async def ctx(app: web.Application):
            events.append("plugin up")
            yield
            events.append("plugin down")
        async def extra(request: web.Request) -> web.Response:
            return web.json_response({"extra": True})

        app.cleanup_ctx.append(ctx)
        app.router.add_get("/extra", extra)

    def factory(app: web.Application) -> PassthroughService:
        events.append("factory")
        return PassthroughService(app[CONFIG], app[UPSTREAM])

    url = await start_proxy(plugins=[plugin], service_factory=factory)
    assert events == ["plugin up", "factory"]
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/extra") as r:
            assert (await r.json()) == {"extra": True} and r.headers["x-request-id"]


async def test_a_service_that_fails_to_build_stops_the_simulator(repo_config) -> None:
    from aiohttp import web

    from proxy.server.app import create_app

    def factory(app: web.Application) -> PassthroughService:
        raise RuntimeError("bad classifier file")

    app = create_app(repo_config, service_factory=factory)
    runner = web.AppRunner(app)
    with pytest.raises(RuntimeError, match="bad classifier"):
        await runner.setup()
    sim_url = app[SIM].url
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientConnectionError):  # nothing listens there any more
            await s.get(sim_url.removesuffix("/v1") + "/health")
    await runner.cleanup()


async def test_server_max_tokens_bounds_every_sample(start_proxy, sim_config) -> None:
    config = sim_config(ttft_s=0.0, tpot_s=0.0)
    url = await start_proxy(replace(config, server=replace(config.server, max_tokens=5)))
    question = [{"role": "user", "content": "Tell me about the history of suspension bridges."}]
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        resp = await client.chat.completions.create(model="sim-1", messages=question)
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="sim-1", messages=question, max_tokens=6)
    assert resp.usage.completion_tokens <= 5 and resp.choices[0].finish_reason == "length"
    assert info.value.param == "max_tokens"
