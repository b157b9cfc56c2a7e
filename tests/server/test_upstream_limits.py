"""Upstream limits, through the real proxy app over HTTP: the model's own ``timeout_s`` and a
``retry-after`` past the call's deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.actions import Selection
from proxy.config import Action, Config, ModelConfig
from proxy.pipeline.service import PipelineService
from proxy.server.state import CONFIG, UPSTREAM
from proxy.upstream.litellm_upstream import import_litellm

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "What is 2 + 3?"}]
Handler = Callable[[dict[str, Any], web.Request], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """An OpenAI-compatible server on port 0 whose every answer comes from ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler, self.calls = handler, 0
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        return await self.handler(await request.json(), request)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _body(*choices: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-f", "object": "chat.completion", "created": 1, "model": "f",
            "choices": list(choices), "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def _choice(content: Any) -> dict[str, Any]:
    return {"index": 0, "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"}


class Fixed:
    """Every request gets ``action``."""

    def __init__(self, action: Action) -> None:
        self.action = action

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        return Selection(self.action, "fixed", "1", "fixed")


def _config(repo_config: Config, url: str, **model: Any) -> Config:
    m = ModelConfig("sim-1", "openai/fake", api_base=url, **model)
    return replace(repo_config, models=(m,), simulator=replace(repo_config.simulator, enabled=False))


def _pipeline(n: int) -> Callable[[web.Application], PipelineService]:
    def make(app: web.Application) -> PipelineService:
        return PipelineService(app[CONFIG], app[UPSTREAM], Fixed(Action("plain", n, "majority")),
                               early_stop=False)
    return make


async def _post(url: str, **body: Any) -> tuple[int, Mapping[str, str], str]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json={"model": "sim-1", "messages": MSG, **body},
                          headers={"x-iapo-task": "math"}) as r:
            return r.status, r.headers.copy(), await r.text()


async def _timed(start_proxy: Any, repo_config: Config, fake: FakeUpstream,
                 **model: Any) -> tuple[int, Mapping[str, str], str, float]:
    """One request through the proxy (one sample) to ``fake`` with the model's ``model`` keys:
    status, headers, body text and seconds."""
    url = await fake.start()
    try:
        proxy = await start_proxy(_config(repo_config, url, **model), service_factory=_pipeline(1))
        t0 = time.monotonic()
        status, headers, text = await _post(proxy)
        return status, headers, text, time.monotonic() - t0
    finally:
        await fake.stop()


# -- 1. the model's timeout_s bounds every call ------------------------------------------------
@pytest.mark.parametrize("transport", ["direct", "litellm"])
async def test_model_timeout_applies_to_pipeline_samples(start_proxy, repo_config,
                                                         transport: str) -> None:
    async def slow(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(10)
        return web.json_response(_body(_choice("The answer is 5.")))

    if transport == "litellm":  # its import (seconds, once per process) is not the call's time
        await asyncio.to_thread(import_litellm)
    status, _, text, elapsed = await _timed(start_proxy, repo_config, FakeUpstream(slow),
                                            timeout_s=0.5, transport=transport)
    assert status == 504, text
    assert elapsed < 3.0  # the model's 0.5 s, not fanout.sample_timeout_s (60 s)
    assert json.loads(text)["error"]["type"] == "timeout_error"


# -- 3. a retry-after past the deadline gives up at once -----------------------------------------
async def test_retry_after_past_the_deadline_is_the_upstreams_429_at_once(start_proxy,
                                                                         repo_config) -> None:
    async def limited(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "slow down", "type": "rate_limit"}},
                                 status=429, headers={"retry-after": "7"})

    fake = FakeUpstream(limited)
    status, headers, text, elapsed = await _timed(start_proxy, repo_config, fake, timeout_s=3,
                                                  max_retries=2)
    assert status == 429, text
    assert headers.get("retry-after") == "7"
    assert elapsed < 1.5 and fake.calls == 1  # no wait that could not end in time


@pytest.mark.parametrize(("retry_after_ms", "backoff_cap_s"), [
    (200, None),  # within the deadline: still waited for
    (600, 0.05),  # longer than our own backoff's cap: waited in full, not cut to the cap
])
async def test_a_retry_after_within_the_deadline_is_waited_for_in_full(
        start_proxy, repo_config, monkeypatch: pytest.MonkeyPatch, retry_after_ms: int,
        backoff_cap_s: float | None) -> None:
    from proxy.upstream import direct

    if backoff_cap_s is not None:
        monkeypatch.setattr(direct, "_RETRY_MAX_S", backoff_cap_s)

    async def once_limited(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        if fake.calls == 1:
            return web.json_response({"error": {"message": "slow down"}}, status=429,
                                     headers={"retry-after-ms": str(retry_after_ms)})
        return web.json_response(_body(_choice("The answer is 5.")))

    fake = FakeUpstream(once_limited)
    status, _, text, elapsed = await _timed(start_proxy, repo_config, fake, timeout_s=5,
                                            max_retries=2)
    assert status == 200 and fake.calls == 2, text
    assert elapsed >= retry_after_ms / 1000  # retrying sooner would meet another 429
