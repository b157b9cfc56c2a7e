"""The chat-completions logic behind the HTTP layer (no HTTP framework here).

The server calls a :class:`ChatService`; :class:`PassthroughService` forwards each request to the
upstream unchanged. The inference-aware pipeline replaces it with its own service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from proxy.config import Config, ModelConfig
from proxy.errors import NotFound
from proxy.protocol import ChatRequest, new_id, to_upstream
from proxy.upstream.base import Upstream
from proxy.upstream.direct import provider_model_name

__all__ = ["KEEP_ALIVE", "ChatResult", "ChatService", "PassthroughService", "RequestContext",
           "bearer_token", "find_model", "is_keep_alive"]

KEEP_ALIVE: dict[str, Any] = {"object": "iapo.keep_alive"}
"""A streaming service yields this while it has nothing to send yet; the server writes it as
the SSE comment ``: keep-alive`` (clients ignore comments; proxies see the connection is alive)."""


def is_keep_alive(obj: Mapping[str, Any]) -> bool:
    return obj is KEEP_ALIVE


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the service knows about the HTTP request.

    ``headers`` is read-only (the pipeline reads ``x-iapo-task`` / ``x-iapo-weights``);
    ``response_headers`` may be filled by a streaming service before its first chunk, and the
    server sends them with the stream's headers; ``disconnected`` is set when the client leaves.
    """

    request_id: str
    profile: str | None = None
    max_samples: int | None = None  # the caller's key's bound on the samples of this request
    headers: Mapping[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A non-streaming answer: the ``chat.completion`` body and extra response headers."""

    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class ChatService(Protocol):
    async def complete(self, req: ChatRequest, ctx: RequestContext) -> ChatResult:
        """Answer a non-streaming request; raises :class:`proxy.errors.ProxyError` subclasses."""
        ...

    def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncIterator[dict[str, Any]]:
        """Yield ``chat.completion.chunk`` objects as they are produced, or :data:`KEEP_ALIVE`."""
        ...


def bearer_token(headers: Mapping[str, str]) -> bytes | None:
    """The ``Authorization: Bearer`` token as the bytes received, or None when there is none."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token.encode("utf-8", "surrogateescape")  # aiohttp decodes header bytes this way


def find_model(models: Config | Mapping[str, ModelConfig], name: str) -> ModelConfig:
    """The virtual model ``name`` (from a config or a name -> model mapping); 404
    ``model_not_found`` if there is none."""
    model = models.model(name) if isinstance(models, Config) else models.get(name)
    if model is None:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    return model


class PassthroughService:
    """Forward every request to its model's upstream; the answer names the virtual model."""

    def __init__(self, config: Config, upstream: Upstream) -> None:
        self.config = config
        self.upstream = upstream
        self._models = {m.name: m for m in config.models}

    async def complete(self, req: ChatRequest, ctx: RequestContext) -> ChatResult:
        model = find_model(self._models, req.model)
        result = await self.upstream.complete(model, to_upstream(req, provider_model_name(model)))
        body = dict(result.body)
        body["model"] = req.model
        if "id" not in body:
            body["id"] = new_id()
        if "created" not in body:
            body["created"] = int(time.time())
        body.setdefault("object", "chat.completion")
        body["usage"] = result.usage.to_dict()
        return ChatResult(body=body)

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncIterator[dict[str, Any]]:
        model = find_model(self._models, req.model)
        async for part in self.upstream.stream(model, to_upstream(req, provider_model_name(model))):
            out = dict(part)
            out["model"] = req.model
            yield out
