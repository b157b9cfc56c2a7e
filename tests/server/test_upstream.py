"""The upstream transports against the simulator (real HTTP) and a scripted fake server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from aiohttp import web

from proxy.config import ModelConfig
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.metrics import Metrics
from proxy.sim.server import SimServer
from proxy.sim.settings import SimSettings
from proxy.upstream.base import UpstreamRateLimited, Usage
from proxy.upstream.direct import DirectUpstream
from proxy.upstream.router import UpstreamRouter, transport_of

REQ = {"messages": [{"role": "user", "content": "What is 2 + 3?"}]}


def _model(url: str, **kw) -> ModelConfig:
    return ModelConfig(name="m", model="openai/sim-1", api_base=url, input_cost_per_token=1e-6,
                       output_cost_per_token=2e-6, **kw)


@pytest.fixture
async def direct():
    up = DirectUpstream()
    yield up
    await up.close()


async def _sim(**settings) -> SimServer:
    sim = SimServer(SimSettings(**settings))
    await sim.start()
    return sim


async def test_complete_and_stream_report_usage_and_cost(direct: DirectUpstream) -> None:
    sim = await _sim()
    try:
        m = _model(sim.url)
        done = await direct.complete(m, {**REQ, "n": 2})
        assert len(done.texts) == 2 and all(done.texts)
        assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
        assert done.cost_usd == pytest.approx(done.usage.prompt_tokens * 1e-6
                                              + done.usage.completion_tokens * 2e-6)
        chunks = [c async for c in direct.stream(m, {**REQ, "stream_options": {"include_usage": True}})]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert chunks[-1]["usage"]["completion_tokens"] > 0
        assert await direct.ready(m)
    finally:
        await sim.stop()


@pytest.mark.parametrize(("fault", "error", "status"), [
    ("error", UpstreamError, 502),
    ("rate_limit", UpstreamRateLimited, 429),
    ("malformed", UpstreamError, 502),
    ("drop", UpstreamError, 502),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_faults_map_to_proxy_errors(direct, fault: str, error: type, status: int,
                                          stream: bool) -> None:
    sim = await _sim(**{f"{fault}_rate": 1.0})
    try:
        with pytest.raises(error) as info:
            if stream:
                async for _ in direct.stream(_model(sim.url), REQ):
                    pass
            else:
                await direct.complete(_model(sim.url), REQ)
        assert info.value.status == status
        if fault == "rate_limit":
            assert info.value.headers == {"retry-after": "1"}
    finally:
        await sim.stop()


async def test_timeout_is_504_and_enforced_by_us(direct) -> None:
    sim = await _sim(slow_rate=1.0, slow_s=5.0)
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(UpstreamTimeout) as info:
            await direct.complete(_model(sim.url, timeout_s=0.2), REQ)
        assert info.value.status == 504 and loop.time() - t0 < 1.0
        with pytest.raises(UpstreamTimeout):
            async for _ in direct.stream(_model(sim.url), REQ, timeout_s=0.2):
                pass
    finally:
        await sim.stop()


async def test_connection_refused_is_502_and_not_ready(direct) -> None:
    m = _model("http://127.0.0.1:9/v1")
    with pytest.raises(UpstreamError) as info:
        await direct.complete(m, REQ)
    assert info.value.status == 502
    assert not await direct.ready(m)


class Scripted:
    """A fake OpenAI-compatible server answering from a script of (status, body, headers)."""

    def __init__(self, script: list[tuple[int, dict, dict]]) -> None:
        self.script, self.calls = script, 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        status, body, headers = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return web.json_response(body, status=status, headers=headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"


OK_BODY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "x",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "5"},
                        "finish_reason": "stop"}], "usage": {"prompt_tokens": 4, "completion_tokens": 1}}
ERR = {"error": {"message": "bad things", "type": "x", "param": None, "code": None}}


async def test_retries_429_and_5xx_then_succeeds(direct) -> None:
    fake = Scripted([(429, ERR, {"retry-after-ms": "10"}), (503, ERR, {}), (200, OK_BODY, {})])
    url = await fake.start()
    try:
        done = await direct.complete(_model(url, max_retries=2), REQ)
        assert done.texts == ["5"] and done.usage == Usage(4, 1) and fake.calls == 3
        fake.calls = 0
        with pytest.raises(UpstreamRateLimited):
            await direct.complete(_model(url, max_retries=0), REQ)
        assert fake.calls == 1
    finally:
        await fake.runner.cleanup()


async def test_upstream_4xx_keeps_status_message_and_param(direct) -> None:
    err = {"error": {"message": "bad things", "type": "invalid_request_error", "param": "tools"}}
    fake = Scripted([(400, err, {})])
    url = await fake.start()
    try:
        with pytest.raises(UpstreamError) as info:
            await direct.complete(_model(url, max_retries=3), REQ)
        assert info.value.status == 400 and "bad things" in info.value.message
        assert info.value.param == "tools"
        assert fake.calls == 1  # never retried
    finally:
        await fake.runner.cleanup()


def test_transport_choice() -> None:
    assert transport_of(ModelConfig("a", "openai/x", api_base="http://h/v1")) == "direct"
    assert transport_of(ModelConfig("a", "openai/x", api_base="embedded")) == "direct"
    assert transport_of(ModelConfig("a", "openai/gpt-4o")) == "litellm"
    assert transport_of(ModelConfig("a", "anthropic/claude", api_base="http://h")) == "litellm"
    assert transport_of(ModelConfig("a", "anthropic/c", api_base="http://h", transport="direct")) == "direct"
    assert transport_of(ModelConfig("a", "openai/x", api_base="http://h", transport="litellm")) == "litellm"


async def test_router_resolves_embedded_and_counts_calls() -> None:
    sim = await _sim()
    metrics = Metrics()
    router = UpstreamRouter(metrics=metrics)
    embedded = ModelConfig("sim-1", "openai/sim-1", api_base="embedded")
    try:
        with pytest.raises(UpstreamError, match="not running"):
            await router.complete(embedded, REQ)
        assert not await router.ready(embedded)
        router.set_embedded_url(sim.url)
        assert (await router.complete(embedded, REQ)).texts[0]
        assert await router.ready(embedded)
        text = metrics.render().decode()
        assert 'iapo_upstream_calls_total{model="sim-1",outcome="ok"} 1.0' in text
        assert 'iapo_upstream_calls_total{model="sim-1",outcome="upstream_error"} 1.0' in text
    finally:
        await router.close()
        await sim.stop()


async def test_litellm_transport_against_the_simulator() -> None:
    """The litellm path end to end (slow import, once per process)."""
    from proxy.upstream.litellm_upstream import LiteLLMUpstream

    sim = await _sim(rate_limit_rate=0.0)
    up = LiteLLMUpstream()
    m = ModelConfig("m", "openai/sim-1", api_base=sim.url, transport="litellm")
    try:
        done = await up.complete(m, {**REQ, "n": 2}, timeout_s=10)
        assert len(done.texts) == 2 and done.usage.completion_tokens > 0
        chunks = [c async for c in up.stream(m, REQ, timeout_s=10)]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        bad = ModelConfig("m", "openai/sim-1", api_base="http://127.0.0.1:9/v1", transport="litellm")
        with pytest.raises(UpstreamError) as info:
            await up.complete(bad, REQ, timeout_s=5)
        assert info.value.status in (502, 504)
    finally:
        await up.close()
        await sim.stop()


class _LiteLLMAuthError(Exception):
    """Shaped like litellm's AuthenticationError / PermissionDeniedError (``status_code``)."""

    def __init__(self, status_code: int) -> None:
        super().__init__("Incorrect API key provided: sk-abc***")
        self.status_code = status_code


@pytest.mark.parametrize("status", [401, 403])
async def test_upstream_401_403_blame_the_proxys_key_on_both_paths(direct, monkeypatch,
                                                                  status: int) -> None:
    from proxy.upstream.litellm_upstream import map_litellm_error

    monkeypatch.delenv("IAPO_TEST_UPSTREAM_KEY", raising=False)
    err = {"error": {"message": "Incorrect API key provided: sk-abc***", "type": "x"}}
    fake = Scripted([(status, err, {})])
    url = await fake.start()
    try:
        m = _model(url, api_key_env="IAPO_TEST_UPSTREAM_KEY", max_retries=2)
        with pytest.raises(UpstreamError) as direct_err:
            await direct.complete(m, REQ)
        with pytest.raises(UpstreamError) as stream_err:
            async for _ in direct.stream(m, REQ):
                pass
        assert fake.calls == 2  # never retried
    finally:
        await fake.runner.cleanup()
    mapped = map_litellm_error(m, _LiteLLMAuthError(status))
    for exc in (direct_err.value, stream_err.value, mapped):
        assert exc.status == 502 and exc.type == "upstream_error"
        assert exc.code == f"upstream_{status}"
        assert exc.message == (f"upstream rejected the proxy's credentials for model 'm' "
                               f"(HTTP {status}); check env var IAPO_TEST_UPSTREAM_KEY, "
                               "which is not set")


async def test_unset_upstream_key_is_logged_and_its_401_is_a_502(start_proxy, repo_config,
                                                                 monkeypatch, caplog) -> None:
    import openai

    from proxy.serving import PassthroughService
    from proxy.server.state import CONFIG, UPSTREAM

    monkeypatch.delenv("IAPO_TEST_UPSTREAM_KEY", raising=False)
    fake = Scripted([(401, ERR, {})])
    url = await fake.start()
    keyed = ModelConfig("sim-1", "openai/sim-1", api_base=url, api_key_env="IAPO_TEST_UPSTREAM_KEY")
    free = ModelConfig("local", "openai/sim-1", api_base=url)
    sim = ModelConfig("sim-2", "openai/sim-1", api_base="embedded", api_key_env="IAPO_TEST_SIM_KEY")
    config = replace(repo_config, models=(keyed, free, sim))
    try:
        with caplog.at_level("WARNING", logger="proxy.server.app"):
            proxy = await start_proxy(config, service_factory=lambda app: PassthroughService(
                app[CONFIG], app[UPSTREAM]))
        warned = [r.getMessage() for r in caplog.records if r.name == "proxy.server.app"]
        assert warned == ["models[0].api_key_env: environment variable IAPO_TEST_UPSTREAM_KEY "
                          "is not set: model 'sim-1' is called without a key"]
        async with openai.AsyncOpenAI(base_url=proxy + "/v1", api_key="x", max_retries=0) as c:
            with pytest.raises(openai.InternalServerError) as info:
                await c.chat.completions.create(model="sim-1", messages=REQ["messages"])
        assert info.value.status_code == 502
        assert "IAPO_TEST_UPSTREAM_KEY" in info.value.message
    finally:
        await fake.runner.cleanup()


async def test_ready_checks_are_shared_and_reused_briefly(monkeypatch) -> None:
    """/ready needs no key: a burst of probes is one upstream call, not one each."""
    from aiohttp import web

    from proxy.upstream import router as router_module

    calls = 0

    async def models(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    router = UpstreamRouter()
    m = ModelConfig("m", "openai/m", api_base=f"http://127.0.0.1:{runner.addresses[0][1]}/v1")
    try:
        assert all(await asyncio.gather(*(router.ready(m) for _ in range(20))))
        assert await router.ready(m) and calls == 1  # shared, then reused
        monkeypatch.setattr(router_module, "READY_TTL_S", 0.0)
        assert await router.ready(m) and calls == 2  # stale: asked again
    finally:
        await router.close()
        await runner.cleanup()
