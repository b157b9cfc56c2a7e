"""Thin HTTP handlers: translate HTTP to :mod:`proxy.serving` calls and back.

``server.request_timeout_s`` bounds reading the body (408), then a whole non-streaming request
and a stream's wait for its first chunk (504). Streaming waits for the service's first chunk
before sending headers, so a failure before any output still gets its real status; after that,
an error goes out as an SSE ``data: {"error":...}`` event and the stream ends. A client that disconnects cancels the handler (the server runs with
``handler_cancellation``), which closes the upstream call.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from proxy import jsonio
from proxy.config import ApiKeyConfig, ServerConfig
from proxy.deadline import deadline
from proxy.errors import (
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    ProxyError,
    RequestTimeout,
    UpstreamTimeout,
)
from proxy.metrics import CONTENT_TYPE
from proxy.protocol import ChatRequest, parse_chat_request
from proxy.server.state import (
    API_KEYS,
    CONFIG,
    METRICS,
    MODELS,
    REQUEST_ID,
    REQUEST_MODEL,
    SERVICE,
    UPSTREAM,
)
from proxy.serving import RequestContext, bearer_token, find_model, is_keep_alive

__all__ = ["authenticate", "routes"]

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
_MAX_DEPTH = 100  # JSON nesting: far above real bodies (tool schemas), below recursion limits
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache",
                "x-accel-buffering": "no"}


def _json(obj: Any, status: int = 200, headers: Any = None) -> web.Response:
    return web.Response(body=jsonio.dumps(obj), status=status,
                        content_type="application/json", headers=headers)


def _sse(obj: Any) -> bytes:
    if is_keep_alive(obj):
        return b": keep-alive\n\n"
    return b"data: " + jsonio.dumps(obj) + b"\n\n"


def authenticate(request: web.Request) -> ApiKeyConfig | None:
    """The caller's key (None when no key is required); 401 when one is required and missing or
    wrong."""
    if not request.app[CONFIG].auth.require_api_key:
        return None
    sent = bearer_token(request.headers)
    if sent is None:
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
    for value, key in request.app[API_KEYS].items():
        if hmac.compare_digest(sent, value.encode()):
            return key
    raise AuthenticationFailed("invalid API key")


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    key = authenticate(request)
    service = app[SERVICE]
    limit = config.server.request_timeout_s
    ctx: RequestContext | None = None
    try:
        # One timer bounds reading the body and, unless streaming, the whole answer.
        async with deadline(limit) as timer:
            req = _chat_request(await _read(request), config.server)
            find_model(app[MODELS], req.model)
            request[REQUEST_MODEL] = req.model  # a metrics label: only once it is a known model
            ctx = RequestContext(request_id=request[REQUEST_ID], headers=request.headers,
                                 profile=key.profile if key else None,
                                 max_samples=key.max_samples if key else None)
            if req.stream:
                timer.clear()  # a stream's first chunk gets its own limit below
            else:
                result = await service.complete(req, ctx)
                return _json(result.body, headers=result.headers)
        return await _stream(request, service.stream(req, ctx), ctx, limit)
    except TimeoutError:
        if ctx is None:
            raise RequestTimeout(f"the request body did not arrive within "
                                 f"server.request_timeout_s ({limit:g} s)") from None
        raise _too_slow(limit) from None
    except asyncio.CancelledError:
        if ctx is not None:
            ctx.disconnected.set()
        raise


async def _read(request: web.Request) -> bytes:
    """The raw body; 413 past ``client_max_size``, 400 when its content-encoding is wrong."""
    try:
        return await request.read()
    except RequestPayloadError as exc:
        raise InvalidRequest(f"the request body could not be read: {exc}") from None


def _chat_request(raw: bytes, server: ServerConfig) -> ChatRequest:
    try:
        body = jsonio.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if jsonio.too_deep(raw, body, _MAX_DEPTH):
        raise InvalidRequest(f"the request body nests lists and objects more than "
                             f"{_MAX_DEPTH} deep")
    return parse_chat_request(body, max_n=server.max_n, max_tokens=server.max_tokens)


def _too_slow(limit: float) -> UpstreamTimeout:
    return UpstreamTimeout(f"no answer within server.request_timeout_s ({limit:g} s)")


async def _stream(request: web.Request, chunks: Any, ctx: RequestContext,
                  first_chunk_limit: float) -> web.StreamResponse:
    try:
        try:
            async with asyncio.timeout(first_chunk_limit):
                first = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except TimeoutError:
            raise _too_slow(first_chunk_limit) from None
        resp = web.StreamResponse(headers={**_SSE_HEADERS, **ctx.response_headers,
                                           "x-request-id": ctx.request_id})
        await resp.prepare(request)
        try:
            if first is not None:
                await resp.write(_sse(first))
                async for part in chunks:
                    await resp.write(_sse(part))
            await resp.write(b"data: [DONE]\n\n")
        except ProxyError as exc:
            await resp.write(_sse(exc.body()))
        except ConnectionResetError:
            ctx.disconnected.set()
            return resp
        except Exception:
            log.exception("request %s failed mid-stream", ctx.request_id)
            await resp.write(_sse(InternalError("internal server error").body()))
        await resp.write_eof()
        return resp
    finally:
        await chunks.aclose()


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    authenticate(request)
    return _json({"object": "list", "data": [_model_obj(name) for name in request.app[MODELS]]})


@routes.get("/v1/models/{name}")
async def get_model(request: web.Request) -> web.Response:
    authenticate(request)
    name = request.match_info["name"]
    find_model(request.app[MODELS], name)  # 404 unless a model or an alias
    return _json(_model_obj(name))


def _model_obj(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "iapo"}


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    models = request.app[CONFIG].models
    upstream = request.app[UPSTREAM]
    answers = await asyncio.gather(*(upstream.ready(m) for m in models))
    status = {m.name: ok for m, ok in zip(models, answers, strict=True)}
    if all(answers):
        return _json({"status": "ready", "models": status})
    down = ", ".join(name for name, ok in status.items() if not ok)
    err = InternalError(f"upstream not reachable: {down}", status=503, code="not_ready")
    return _json({**err.body(), "status": "not_ready", "models": status}, status=503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=request.app[METRICS].render())
    resp.headers["content-type"] = CONTENT_TYPE
    return resp
