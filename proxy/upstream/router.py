"""One :class:`Upstream` for the whole proxy that picks the transport per model.

``transport: direct`` → :class:`DirectUpstream`; ``litellm`` → :class:`LiteLLMUpstream`;
``auto`` (the default) → direct for the embedded simulator and for models with an ``api_base``
whose litellm string is ``openai/...`` (OpenAI, vLLM, any OpenAI-compatible server), litellm
otherwise. The direct path costs ~10x less CPU per call than litellm (see README, "Upstream
transports"), which matters when one request fans out to many samples.

Models with ``api_base: embedded`` are resolved to the in-process simulator's URL, set with
:meth:`UpstreamRouter.set_embedded_url` once it listens. Every call is counted in the metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from proxy.config import ModelConfig
from proxy.errors import ProxyError, UpstreamError
from proxy.metrics import Metrics
from proxy.upstream.base import Completion, Upstream, Usage, usage_of
from proxy.upstream.direct import DirectUpstream
from proxy.upstream.litellm_upstream import LiteLLMUpstream

__all__ = ["READY_TTL_S", "UpstreamRouter", "transport_of"]

READY_TTL_S = 2.0


def transport_of(model: ModelConfig) -> str:
    """``direct`` or ``litellm``: where calls for ``model`` go."""
    if model.transport != "auto":
        return model.transport
    if model.embedded or (model.api_base and model.model.startswith("openai/")):
        return "direct"
    return "litellm"


class UpstreamRouter:
    """:class:`Upstream` dispatching each model to the direct or the litellm transport."""

    def __init__(self, *, direct: Upstream | None = None, litellm: Upstream | None = None,
                 metrics: Metrics | None = None, embedded_url: str | None = None) -> None:
        self.direct = direct or DirectUpstream()
        self._litellm = litellm
        self.metrics = metrics
        self._embedded_url = embedded_url
        self._resolved: dict[ModelConfig, ModelConfig] = {}
        self._ready: dict[str, tuple[float, bool]] = {}  # model -> (time.monotonic(), answer)
        self._ready_checks: dict[str, asyncio.Future[bool]] = {}

    @property
    def litellm(self) -> Upstream:
        if self._litellm is None:
            self._litellm = LiteLLMUpstream()
        return self._litellm

    def set_embedded_url(self, url: str | None) -> None:
        self._embedded_url = url
        self._resolved.clear()
        self._ready.clear()

    def resolve(self, model: ModelConfig) -> ModelConfig:
        """``model`` with ``api_base: embedded`` replaced by the simulator's URL."""
        if not model.embedded:
            return model
        resolved = self._resolved.get(model)
        if resolved is None:
            if self._embedded_url is None:
                raise UpstreamError(f"model '{model.name}' uses the embedded simulator, "
                                    "which is not running")
            resolved = self._resolved[model] = replace(model, api_base=self._embedded_url)
        return resolved

    def _pick(self, model: ModelConfig) -> Upstream:
        return self.direct if transport_of(model) == "direct" else self.litellm

    async def complete(self, model: ModelConfig, request: Mapping[str, Any], *,
                       timeout_s: float | None = None) -> Completion:
        try:
            result = await self._pick(model).complete(self.resolve(model), request, timeout_s=timeout_s)
        except ProxyError as exc:
            self._count(model, exc.code or "error")
            raise
        except asyncio.CancelledError:  # early stop, a client gone: the call was still made
            self._count(model, "cancelled")
            raise
        except Exception:
            self._count(model, "error")
            raise
        self._count(model, "ok", result.usage, result.cost_usd)
        return result

    async def stream(self, model: ModelConfig, request: Mapping[str, Any], *,
                     timeout_s: float | None = None) -> AsyncIterator[Mapping[str, Any]]:
        usage = Usage()
        outcome = "cancelled"
        try:
            async for chunk in self._pick(model).stream(self.resolve(model), request, timeout_s=timeout_s):
                if chunk.get("usage"):
                    usage = usage_of(chunk)
                yield chunk
            outcome = "ok"
        except ProxyError as exc:
            outcome = exc.code or "error"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self._count(model, outcome, usage, self.cost(model, usage))

    def _count(self, model: ModelConfig, outcome: str, usage: Usage | None = None,
               cost: float = 0.0) -> None:
        if self.metrics is not None:
            self.metrics.observe_upstream(model.name, outcome, usage, cost)

    def cost(self, model: ModelConfig, usage: Usage) -> float:
        return self._pick(model).cost(model, usage)

    async def ready(self, model: ModelConfig) -> bool:
        """Whether ``model``'s upstream answers. An answer is reused for ``READY_TTL_S`` and
        concurrent asks share one check: ``/ready`` needs no key, so each hit must not be an
        upstream call made with the proxy's key."""
        seen = self._ready.get(model.name)
        if seen is not None and time.monotonic() - seen[0] < READY_TTL_S:
            return seen[1]
        check = self._ready_checks.get(model.name)
        if check is None:
            check = self._ready_checks[model.name] = asyncio.ensure_future(self._check(model))
            check.add_done_callback(lambda _: self._ready_checks.pop(model.name, None))
        ok = await asyncio.shield(check)
        self._ready[model.name] = (time.monotonic(), ok)
        return ok

    async def _check(self, model: ModelConfig) -> bool:
        try:
            resolved = self.resolve(model)
        except UpstreamError:
            return False
        return await self._pick(model).ready(resolved)

    async def close(self) -> None:
        await self.direct.close()
        if self._litellm is not None:
            await self._litellm.close()
