"""The simulated upstream as an aiohttp app: OpenAI chat completions plus simulator controls.

Endpoints: ``POST /v1/chat/completions`` (n, seed, stop, max_tokens, tools (see
:mod:`proxy.sim.tools`), SSE streaming with ``stream_options.include_usage``),
``GET /v1/models``, ``GET /health``, ``GET /sim/stats``, ``POST /sim/reset``,
``POST /v1/reward`` (``{"prompt", "response"} -> {"score"}``, the true quality in [0, 1]).

Latency: ttft + tokens * tpot (the longest choice), times ``1 + jitter * U(-1, 1)``; headers
``x-sim-ttft-ms`` / ``x-sim-tpot-ms`` override it per request. Streaming sends the first chunk
after ttft and one token per choice every tpot; a tool call streams as OpenAI's do: a head
chunk (id, name, ``arguments: ""``) after ttft, then one argument token every tpot. Faults: see
:mod:`proxy.sim.settings`. A request whose client disconnects (the handler is cancelled, or a
write fails) counts as ``cancelled`` in the stats.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from proxy.sim.model import SimModel
from proxy.sim.protocol import (BadRequest, ChatRequest, chunk_object, completion_object,
                                error_body, parse_chat_request, usage_object)
from proxy.sim.serving import Choice, generate, prompt_tokens, request_rng
from proxy.sim.settings import FAULTS, FaultHeaderError, SimSettings, choose_fault
from proxy.sim.tasks import TaskIndex, load_task_dir

__all__ = ["SimServer", "SimStats", "create_sim_app", "load_model", "SIM_STATE"]

log = logging.getLogger(__name__)
_JSON = "application/json"
_MAX_BODY_BYTES = 64 << 20  # as a hosted model's: whatever the proxy in front lets through


@dataclass
class SimStats:
    """Counters of chat-completion requests (mutable, owned by the app's event loop)."""

    requests: int = 0
    completed: int = 0
    cancelled: int = 0
    in_flight: int = 0
    errors_injected: int = 0
    bad_requests: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reset(self) -> None:
        """Zero every counter except ``in_flight`` (requests still running stay counted)."""
        self.requests = self.completed = self.cancelled = 0
        self.errors_injected = self.bad_requests = 0
        self.faults = dict.fromkeys(FAULTS, 0)


@dataclass
class _State:
    settings: SimSettings
    model: SimModel
    stats: SimStats
    rng: np.random.Generator        # content of unseeded requests
    ops_rng: np.random.Generator    # faults and jitter (never affects content)
    ids: itertools.count


SIM_STATE = web.AppKey("sim_state", _State)


@functools.lru_cache(maxsize=4)
def load_model(tasks_dir: Path) -> SimModel:
    """The response model over every task set in ``tasks_dir`` (cached per directory)."""
    return SimModel(TaskIndex(load_task_dir(tasks_dir)))


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status, content_type=_JSON,
                        headers=headers)


def _ms_header(request: web.Request, name: str, default_s: float) -> float:
    raw = request.headers.get(name)
    if raw is None:
        return default_s
    try:
        val = float(raw)
    except ValueError:
        raise BadRequest(f"header {name} must be a number of milliseconds", name) from None
    if not math.isfinite(val) or val < 0:
        raise BadRequest(f"header {name} must be >= 0", name)
    return val / 1000.0


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    st = request.app[SIM_STATE]
    st.stats.requests += 1
    st.stats.in_flight += 1
    try:
        return await _chat(request, st)
    except asyncio.CancelledError:
        st.stats.cancelled += 1
        raise
    finally:
        st.stats.in_flight -= 1


async def _chat(request: web.Request, st: _State) -> web.StreamResponse:
    try:
        fault = choose_fault(st.settings, request.headers, st.ops_rng)
        ttft = _ms_header(request, "x-sim-ttft-ms", st.settings.ttft_s)
        tpot = _ms_header(request, "x-sim-tpot-ms", st.settings.tpot_s)
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise BadRequest("request body is not valid JSON") from None
        req = parse_chat_request(body)
    except (BadRequest, FaultHeaderError) as exc:
        st.stats.bad_requests += 1
        return _json(error_body(str(exc), param=getattr(exc, "param", None)), status=400)
    if fault is not None:
        st.stats.errors_injected += 1
        st.stats.faults[fault] += 1
        if fault == "error":
            return _json(error_body("simulated upstream failure", "server_error", None,
                                    "internal_error"), status=500)
        if fault == "rate_limit":
            ra = st.settings.retry_after_s
            return _json(error_body("simulated rate limit", "rate_limit_error", None,
                                    "rate_limit_exceeded"), status=429,
                         headers={"retry-after": str(max(1, math.ceil(ra))),
                                  "retry-after-ms": str(int(ra * 1000))})
        if fault == "malformed":
            return web.Response(body=b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess',
                                status=200, content_type=_JSON)
        if fault == "slow":
            await asyncio.sleep(st.settings.slow_s)
    choices = generate(st.model, req, request_rng(req, st.rng))
    scale = 1.0 + st.settings.jitter * (2.0 * st.ops_rng.random() - 1.0) if st.settings.jitter else 1.0
    cid = f"chatcmpl-sim{next(st.ids):010x}"
    usage = usage_object(prompt_tokens(req), sum(c.tokens for c in choices))
    if req.stream:
        return await _stream(request, st, req, choices, cid, usage, ttft * scale, tpot * scale,
                             drop=fault == "drop")
    await _sleep((ttft + max(c.tokens for c in choices) * tpot) * scale)
    calls = [c.tool_call.as_dict() if c.tool_call else None for c in choices]
    obj = completion_object(cid, int(time.time()), req.model, [c.text for c in choices],
                            [c.finish_reason for c in choices], usage, "fp_sim", calls)
    if fault == "drop":
        return await _drop(request, json.dumps(obj).encode())
    st.stats.completed += 1
    return _json(obj)


async def _drop(request: web.Request, body: bytes) -> web.StreamResponse:
    """Send the headers and half the body, then close the connection."""
    resp = web.StreamResponse(status=200, headers={"content-type": _JSON})
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return resp


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _delta(c: Choice, step: int) -> dict[str, Any] | None:
    """Choice ``c``'s delta at stream step ``step`` (None once it has sent everything)."""
    call = c.tool_call
    if call is None:
        if step == 0:
            return {"role": "assistant", "content": c.pieces[0] if c.pieces else ""}
        return {"content": c.pieces[step]} if step < c.tokens else None
    if step == 0:
        return {"role": "assistant", "content": None,
                "tool_calls": [{"index": 0, **call.as_dict(arguments="")}]}
    if step > c.tokens:
        return None
    return {"tool_calls": [{"index": 0, "function": {"arguments": c.pieces[step - 1]}}]}


async def _stream(request: web.Request, st: _State, req: ChatRequest, choices: list[Choice],
                  cid: str, usage: dict[str, int], ttft: float, tpot: float,
                  drop: bool) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"content-type": "text/event-stream",
                                                   "cache-control": "no-cache"})
    created, with_usage = int(time.time()), req.include_usage

    def chunk(parts: list[dict[str, Any]]) -> bytes:
        return _sse(chunk_object(cid, created, req.model, parts, None, with_usage))

    try:
        await resp.prepare(request)
        await _sleep(ttft)
        await resp.write(chunk([{"index": i, "delta": _delta(c, 0), "logprobs": None,
                                 "finish_reason": None} for i, c in enumerate(choices)]))
        if drop:
            if request.transport is not None:
                request.transport.close()
            return resp
        for step in range(1, max(c.tokens + (c.tool_call is not None) for c in choices)):
            await _sleep(tpot)
            parts = [{"index": i, "delta": d, "logprobs": None, "finish_reason": None}
                     for i, c in enumerate(choices) if (d := _delta(c, step)) is not None]
            await resp.write(chunk(parts))
        await resp.write(chunk([{"index": i, "delta": {}, "logprobs": None,
                                 "finish_reason": c.finish_reason} for i, c in enumerate(choices)]))
        if with_usage:
            await resp.write(_sse(chunk_object(cid, created, req.model, [], usage, True)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    except ConnectionResetError:
        st.stats.cancelled += 1
        return resp
    st.stats.completed += 1
    return resp


async def models(request: web.Request) -> web.Response:
    names = request.app[SIM_STATE].settings.model_names
    return _json({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                              "owned_by": "iapo-sim"} for n in names]})


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    return _json(request.app[SIM_STATE].stats.as_dict())


async def reset(request: web.Request) -> web.Response:
    st = request.app[SIM_STATE]
    st.stats.reset()
    return _json(st.stats.as_dict())


async def reward(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _json(error_body("request body is not valid JSON"), status=400)
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("prompt", "response")):
        return _json(error_body("body must be {\"prompt\": str, \"response\": str}", param="prompt"),
                     status=400)
    score = request.app[SIM_STATE].model.quality(body["prompt"], body["response"])
    return _json({"score": float(score)})


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return _json(error_body(exc.reason, kind, None, str(exc.status)), status=exc.status)


def create_sim_app(settings: SimSettings, model: SimModel | None = None) -> web.Application:
    """The simulator app; ``model`` defaults to one over ``settings.tasks_dir``."""
    app = web.Application(middlewares=[_errors], client_max_size=_MAX_BODY_BYTES)
    ss = np.random.SeedSequence(settings.seed)
    rng, ops = (np.random.default_rng(s) for s in ss.spawn(2))
    app[SIM_STATE] = _State(settings, model or load_model(Path(settings.tasks_dir)), SimStats(),
                            rng, ops, itertools.count(1))
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/sim/stats", stats)
    app.router.add_post("/sim/reset", reset)
    app.router.add_post("/v1/reward", reward)
    return app


class SimServer:
    """The simulator on a real port: ``url = await SimServer(settings).start()``."""

    def __init__(self, settings: SimSettings | None = None, model: SimModel | None = None) -> None:
        self.settings = settings or SimSettings()
        self.app = create_sim_app(self.settings, model)
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def stats(self) -> SimStats:
        return self.app[SIM_STATE].stats

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0: any free port); returns the base URL ending in ``/v1``."""
        if self._runner is not None:
            raise RuntimeError("SimServer already started")
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0][1]
        self.url = f"http://{host}:{bound}/v1"
        log.info("simulated upstream listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
