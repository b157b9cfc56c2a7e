"""The litellm path, for providers that are not plain OpenAI-compatible HTTP.

litellm is imported once per process, lazily, in a worker thread (the import takes seconds and
must not block the event loop), with ``LITELLM_LOCAL_MODEL_COST_MAP`` set so it never fetches its
price map from the network. Our own ``asyncio.timeout`` bounds every call; litellm's exception
classes (each carries ``status_code``) map to the proxy's errors as in
:mod:`proxy.upstream.direct`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Any

from proxy.config import ModelConfig
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

__all__ = ["CHAT_PARAMS", "LiteLLMUpstream", "import_litellm", "map_litellm_error"]

# The OpenAI Chat Completions parameters, which litellm maps onto each provider. A request's other
# fields travel in ``extra_body`` (the provider's request body), never as litellm's own keyword
# arguments: there ``api_base``, ``base_url``, ``api_key``, ``extra_headers``, ``mock_response``,
# ``fallbacks`` ... would let a client send the call, and the model's key with it, anywhere.
CHAT_PARAMS = frozenset({
    "messages", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "audio", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "reasoning_effort",
    "response_format", "seed", "service_tier", "stop", "store", "temperature", "tool_choice",
    "tools", "top_logprobs", "top_p", "user", "web_search_options",
})

_lock = threading.Lock()
_module: ModuleType | None = None


def import_litellm() -> ModuleType:
    """Import litellm once for the process (blocking; call it via ``asyncio.to_thread``)."""
    global _module  # one import per process is the point; the module object never changes
    with _lock:
        if _module is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.telemetry = False
            litellm.suppress_debug_info = True
            _module = litellm
        return _module


def map_litellm_error(model: ModelConfig, exc: Exception) -> UpstreamError:
    """The proxy error for an exception raised by ``litellm.acompletion``."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    message = f"upstream '{model.name}': {getattr(exc, 'message', None) or exc}"
    if "Timeout" in name or status == 408:
        return UpstreamTimeout(message)
    if status == 429 or name == "RateLimitError":
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        retry_after = headers.get("retry-after") if hasattr(headers, "get") else None
        return UpstreamRateLimited(message, headers={"retry-after": retry_after} if retry_after else {})
    if status in (401, 403):  # litellm's AuthenticationError / PermissionDeniedError
        return credentials_rejected(model, status)
    if isinstance(status, int) and 400 <= status < 500:
        return UpstreamError(message, status=status, code=f"upstream_{status}")
    return UpstreamError(message)


class LiteLLMUpstream:
    """:class:`proxy.upstream.base.Upstream` through ``litellm.acompletion``."""

    def __init__(self) -> None:
        self._litellm: ModuleType | None = _module

    async def load(self) -> ModuleType:
        """Import litellm (in a thread) if that has not happened yet."""
        if self._litellm is None:
            self._litellm = await asyncio.to_thread(import_litellm)
        return self._litellm

    def _kwargs(self, model: ModelConfig, request: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """litellm's arguments: the request's chat parameters (:data:`CHAT_PARAMS`), every other
        field of it in ``extra_body``, then the model's own connection settings."""
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in request.items():
            if key not in ("model", "stream", "stream_options"):
                (kwargs if key in CHAT_PARAMS else extra)[key] = value
        if extra:
            kwargs["extra_body"] = extra
        kwargs.update(model=model.model, timeout=timeout, num_retries=model.max_retries)
        if model.api_base and not model.embedded:
            kwargs["api_base"] = model.api_base
        if model.api_key_env:
            kwargs["api_key"] = os.environ.get(model.api_key_env) or None
        elif "api_base" in kwargs:
            kwargs["api_key"] = "none"  # a keyless local server; litellm insists on some key
        return kwargs

    async def complete(self, model: ModelConfig, request: Mapping[str, Any], *,
                       timeout_s: float | None = None) -> Completion:
        litellm = await self.load()
        timeout = call_timeout(model, timeout_s)
        try:
            async with asyncio.timeout(timeout):
                resp = await litellm.acompletion(**self._kwargs(model, request, timeout))
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{model.name}' did not answer within {timeout:g} s") from None
        except Exception as exc:  # litellm raises its own classes; map every one
            raise map_litellm_error(model, exc) from None
        body = resp.model_dump()
        usage = usage_of(body)
        cost = config_cost(model, usage)
        if cost is None:
            cost = self._litellm_cost(resp)
        return Completion(body=body, usage=usage, cost_usd=cost)

    async def stream(self, model: ModelConfig, request: Mapping[str, Any], *,
                     timeout_s: float | None = None) -> AsyncIterator[Mapping[str, Any]]:
        litellm = await self.load()
        timeout = call_timeout(model, timeout_s)
        kwargs = self._kwargs(model, request, timeout)
        kwargs["stream"] = True
        if "stream_options" in request:
            kwargs["stream_options"] = request["stream_options"]
        try:
            async with asyncio.timeout(timeout):
                resp = await litellm.acompletion(**kwargs)
            iterator = resp.__aiter__()
            while True:
                async with asyncio.timeout(timeout):
                    try:
                        chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        return
                yield chunk.model_dump()
        except TimeoutError:
            raise UpstreamTimeout(f"upstream '{model.name}' stalled for {timeout:g} s") from None
        except UpstreamError:
            raise
        except Exception as exc:
            raise map_litellm_error(model, exc) from None

    def _litellm_cost(self, resp: Any) -> float:
        try:
            return float(self._litellm.completion_cost(completion_response=resp))  # type: ignore[union-attr]
        except Exception:  # unknown model in litellm's price map
            return 0.0

    def cost(self, model: ModelConfig, usage: Usage) -> float:
        cost = config_cost(model, usage)
        if cost is not None or self._litellm is None:
            return cost or 0.0
        try:
            p, c = self._litellm.cost_per_token(model=model.model, prompt_tokens=usage.prompt_tokens,
                                                completion_tokens=usage.completion_tokens)
            return float(p + c)
        except Exception:
            return 0.0

    async def ready(self, model: ModelConfig) -> bool:
        """litellm has no generic health call: ready once it imports and a key is present."""
        try:
            await self.load()
        except Exception:
            return False
        return not model.api_key_env or bool(os.environ.get(model.api_key_env))

    async def close(self) -> None:
        return None
