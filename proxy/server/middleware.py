"""The one error middleware: every failure becomes OpenAI's error body with the right status,
and every response carries ``x-request-id``.

:class:`proxy.errors.ProxyError` renders as itself; aiohttp's own HTTP errors (413 body too large,
404 no route, 405 wrong method) are mapped to the same shape; anything unexpected is logged with
the request id and answered as a 500 ``internal_error`` without a traceback. A chat request
whose client disconnects is counted in the metrics with status 499.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from proxy import jsonio
from proxy.errors import (
    InternalError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProxyError,
)
from proxy.server.state import CONFIG, METRICS, REQUEST_ID, REQUEST_MODEL

__all__ = ["error_middleware", "error_response", "request_id_of"]

log = logging.getLogger(__name__)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CHAT_PATH = "/v1/chat/completions"
_CLIENT_CLOSED = 499  # nginx's status for "client closed the request", in the metrics only
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_id_of(request: web.Request) -> str:
    """The client's ``x-request-id`` when it is sane, else a fresh one."""
    rid = request.headers.get("x-request-id")
    if rid is not None and _SANE_ID.match(rid):
        return rid
    return os.urandom(16).hex()  # 128 random bits like uuid4's hex, a fifth of its cost


def error_response(exc: ProxyError, request_id: str | None = None) -> web.Response:
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return web.Response(body=jsonio.dumps(exc.body()), status=exc.status,
                        content_type="application/json", headers=headers)


def _from_http(exc: web.HTTPException, request: web.Request) -> ProxyError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(f"request body too large (limit {request.app[CONFIG].server.max_body_bytes} bytes)")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no route for {request.method} {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return InvalidRequest(f"method {request.method} not allowed on {request.path}",
                              status=405, code="method_not_allowed")
    if exc.status >= 500:
        return InternalError(exc.reason, status=exc.status)
    return InvalidRequest(exc.text or exc.reason, status=exc.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id_of(request)
    request[REQUEST_ID] = rid
    start = time.perf_counter()
    try:
        resp = await handler(request)
    except ProxyError as exc:
        resp = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = error_response(_from_http(exc, request))
    except asyncio.CancelledError:  # the client went away
        _observe(request, _CLIENT_CLOSED, start)
        raise
    except Exception:  # the last line of defence: log it, never show a traceback
        log.exception("request %s failed", rid)
        resp = error_response(InternalError("internal server error"))
    if not resp.prepared:
        resp.headers["x-request-id"] = rid
    _observe(request, resp.status, start)
    return resp


def _observe(request: web.Request, status: int, start: float) -> None:
    if request.path == _CHAT_PATH:
        request.app[METRICS].observe_request(request.get(REQUEST_MODEL, ""), status,
                                             time.perf_counter() - start)
