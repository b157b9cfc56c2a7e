"""The direct path: OpenAI-compatible HTTP (OpenAI, vLLM, the simulator) without litellm.

Non-streaming calls go over :class:`proxy.upstream.http1.Http1Pool` (a lean keep-alive pool:
a third of aiohttp's client CPU per call); streams and ``ready`` over one shared
``aiohttp.ClientSession``.

Failures map to the proxy's errors: connection errors, malformed bodies and stream chunks that
are not JSON objects → 502 :class:`UpstreamError`; our own deadline (:mod:`proxy.deadline`) → 504
:class:`UpstreamTimeout`; upstream 429 → 429 :class:`UpstreamRateLimited` (``retry-after``
kept); upstream 401/403 → 502 naming the model's key env var (:func:`credentials_rejected`: the
proxy's key, not the client's); other upstream 4xx → the same status with the upstream's
message; upstream 5xx → 502. ``model.max_retries`` retries 429, 5xx and connection errors with
exponential backoff that honours ``retry-after``; a wait that would end past the call's deadline
is not started: the upstream's error (a 429 with its ``retry-after``) is raised at once instead
of a timeout later.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from proxy import jsonio
from proxy.config import ModelConfig
from proxy.deadline import deadline
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import (
    Completion,
    UpstreamRateLimited,
    Usage,
    call_timeout,
    config_cost,
    credentials_rejected,
    usage_of,
)
from proxy.upstream.http1 import Http1Pool

__all__ = ["DirectUpstream", "provider_model_name"]

_RETRY_BASE_S = 0.2
_RETRY_MAX_S = 10.0  # our own backoff's cap (an upstream's retry-after is waited in full)
_READY_TIMEOUT_S = 2.0
_JSON_HEADERS = {"Content-Type": "application/json"}


def provider_model_name(model: ModelConfig) -> str:
    """The model name sent upstream: the litellm string without its ``openai/`` prefix."""
    return model.model.removeprefix("openai/")


class _Retryable(Exception):
    def __init__(self, error: UpstreamError, wait_s: float | None) -> None:
        self.error, self.wait_s = error, wait_s


class DirectUpstream:
    """:class:`proxy.upstream.base.Upstream` over plain HTTP to ``{api_base}/chat/completions``.

    The session is created lazily inside the running loop; ``limit`` caps open connections.
    ``pool`` replaces the HTTP/1.1 pool of non-streaming calls (anything with its ``post`` and
    ``close``; ``benchmarks/request_cpu.py`` passes one that answers without a socket).
    """

    def __init__(self, *, limit: int = 512, pool: Http1Pool | None = None) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._http1: Http1Pool | None = pool

    def _pool(self) -> Http1Pool:
        if self._http1 is None:
            self._http1 = Http1Pool(self._limit)
        return self._http1

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0,
                                             ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",))
        return self._session

    @staticmethod
    def _headers(model: ModelConfig) -> dict[str, str]:
        """The request headers (not to be mutated: without a key they are shared)."""
        if model.api_key_env:
            key = os.environ.get(model.api_key_env, "")  # read per call: a rotated key applies
            if key:
                return {**_JSON_HEADERS, "Authorization": f"Bearer {key}"}
        return _JSON_HEADERS

    @staticmethod
    def _url(model: ModelConfig, path: str) -> str:
        if not model.api_base or model.embedded:
            raise UpstreamError(f"model '{model.name}' has no resolved api_base")
        return model.api_base.rstrip("/") + path

    def _encode(self, model: ModelConfig, request: Mapping[str, Any], stream: bool) -> bytes:
        body = dict(request)
        body["model"] = provider_model_name(model)
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return jsonio.dumps(body)

    async def complete(self, model: ModelConfig, request: Mapping[str, Any], *,
                       timeout_s: float | None = None) -> Completion:
        timeout = call_timeout(model, timeout_s)
        data = self._encode(model, request, stream=False)
        try:
            async with deadline(timeout) as limit:
                if model.max_retries:
                    body = await self._with_retries(
                        model, lambda: self._complete_once(model, data), limit.when)
                else:
                    try:
                        body = await self._complete_once(model, data)
                    except _Retryable as exc:  # no retry to make
                        raise exc.error from None
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{model.name}' did not answer within "
                                  f"{timeout:g} s") from None
        usage = usage_of(body)
        return Completion(body=body, usage=usage, cost_usd=self.cost(model, usage))

    async def _complete_once(self, model: ModelConfig, data: bytes) -> dict[str, Any]:
        try:
            resp = await self._pool().post(self._url(model, "/chat/completions"), data,
                                           self._headers(model))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise _Retryable(UpstreamError(f"upstream '{model.name}' connection failed: "
                                           f"{type(exc).__name__}"), None) from None
        if resp.status >= 400:
            raise _status_error(model, resp.status, resp.body, resp.headers)
        try:
            body = jsonio.loads(resp.body)
        except ValueError:
            raise UpstreamError(f"upstream '{model.name}' returned malformed JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise UpstreamError(f"upstream '{model.name}' returned an unexpected body")
        return body

    async def _with_retries(self, model: ModelConfig, attempt: Any, deadline: float | None) -> Any:
        """``attempt()``, retried up to ``model.max_retries`` times after the upstream's
        ``retry-after``, else an exponential backoff capped at :data:`_RETRY_MAX_S`; a wait that
        would end past ``deadline`` gives up at once with the upstream's error (a 429 keeps its
        ``retry-after``, so the client can back off itself)."""
        loop = asyncio.get_running_loop()
        for i in range(model.max_retries + 1):
            try:
                return await attempt()
            except _Retryable as exc:
                wait = exc.wait_s if exc.wait_s is not None else min(_RETRY_BASE_S * 2 ** i,
                                                                     _RETRY_MAX_S)
                late = deadline is not None and loop.time() + wait >= deadline
                if i >= model.max_retries or late:
                    raise exc.error from None
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def stream(self, model: ModelConfig, request: Mapping[str, Any], *,
                     timeout_s: float | None = None) -> AsyncIterator[Mapping[str, Any]]:
        timeout = call_timeout(model, timeout_s)
        data = self._encode(model, request, stream=True)
        try:
            async with asyncio.timeout(timeout) as limit:
                resp = await self._with_retries(model, lambda: self._open_stream(model, data),
                                                limit.when())
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{model.name}' did not start streaming within "
                                  f"{timeout:g} s") from None
        done = False
        try:
            while True:
                try:
                    async with asyncio.timeout(timeout):
                        line = await resp.content.readline()
                except TimeoutError:
                    raise UpstreamTimeout(f"upstream '{model.name}' stalled for {timeout:g} s "
                                          "mid-stream") from None
                except aiohttp.ClientError as exc:
                    raise UpstreamError(f"upstream '{model.name}' stream broke: "
                                        f"{type(exc).__name__}") from None
                if not line:
                    raise UpstreamError(f"upstream '{model.name}' closed the stream early")
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, event: lines
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    return
                try:
                    chunk = jsonio.loads(payload)
                except ValueError:
                    chunk = None
                if not isinstance(chunk, dict):
                    raise UpstreamError(f"upstream '{model.name}' sent a malformed chunk")
                if "error" in chunk:
                    err = chunk["error"] if isinstance(chunk["error"], dict) else {}
                    raise UpstreamError(f"upstream '{model.name}': {err.get('message', 'error')}")
                yield chunk
        finally:
            if done:
                resp.release()
            else:
                resp.close()  # abort: the upstream sees the disconnect and stops generating

    async def _open_stream(self, model: ModelConfig, data: bytes) -> aiohttp.ClientResponse:
        try:
            resp = await self._http().post(self._url(model, "/chat/completions"), data=data,
                                           headers=self._headers(model))
        except aiohttp.ClientError as exc:
            raise _Retryable(UpstreamError(f"upstream '{model.name}' connection failed: "
                                           f"{type(exc).__name__}"), None) from None
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except aiohttp.ClientError:
                raw = b""
            finally:
                resp.release()
            raise _status_error(model, resp.status, raw, resp.headers)
        return resp

    def cost(self, model: ModelConfig, usage: Usage) -> float:
        return config_cost(model, usage) or 0.0

    async def ready(self, model: ModelConfig) -> bool:
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                async with self._http().get(self._url(model, "/models"),
                                            headers=self._headers(model)) as resp:
                    await resp.read()
                    return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, UpstreamError):
            return False

    async def close(self) -> None:
        if self._http1 is not None:
            await self._http1.close()
            self._http1 = None
        if self._session is not None:
            await self._session.close()
            self._session = None


def _status_error(model: ModelConfig, status: int, raw: bytes,
                  headers: Mapping[str, str]) -> Exception:
    """The error for an upstream HTTP status; retryable ones come wrapped in ``_Retryable``."""
    message, param = f"HTTP {status}", None
    try:
        err = jsonio.loads(raw).get("error")
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
            param = err.get("param") if isinstance(err.get("param"), str) else None
        elif isinstance(err, str):
            message = err
    except (ValueError, AttributeError):
        pass
    text = f"upstream '{model.name}': {message}"
    if status in (401, 403):
        return credentials_rejected(model, status)
    if status == 429:
        retry_after = headers.get("retry-after")
        kept = {"retry-after": retry_after} if retry_after else {}
        return _Retryable(UpstreamRateLimited(text, headers=kept), _retry_after_s(headers))
    if status >= 500:
        return _Retryable(UpstreamError(text), None)
    return UpstreamError(text, param=param, status=status, code=f"upstream_{status}")


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None
