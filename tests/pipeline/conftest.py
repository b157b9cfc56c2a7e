"""Fixtures: the shipped config, a scriptable fake upstream, the simulator over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Config, ModelConfig, load_config
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.pipeline.classify import TaskClassifier
from proxy.sim.server import SimServer
from proxy.sim.settings import SimSettings
from proxy.upstream.base import Completion, Usage
from proxy.upstream.direct import DirectUpstream

ROOT = Path(__file__).resolve().parents[2]

Responder = Callable[[Mapping[str, Any]], Any]


class FakeUpstream:
    """An :class:`proxy.upstream.base.Upstream` whose replies come from ``respond(body)``: a
    list of texts (one per choice) or an exception to raise; ``delay(body)`` seconds first,
    cut short by ``timeout_s`` (504 :class:`UpstreamTimeout`, as the real transports do)."""

    def __init__(self, respond: Responder, delay: Callable[[Mapping[str, Any]], float] | None = None,
                 cost_per_call: float = 0.001) -> None:
        self.respond, self.delay, self.cost_per_call = respond, delay, cost_per_call
        self.calls: list[Mapping[str, Any]] = []
        self.cancelled = 0

    async def complete(self, model: ModelConfig, request: Mapping[str, Any], *,
                       timeout_s: float | None = None) -> Completion:
        self.calls.append(request)
        try:
            if self.delay is not None:
                async with asyncio.timeout(timeout_s):
                    await asyncio.sleep(self.delay(request))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except TimeoutError:
            raise UpstreamTimeout(f"fake upstream did not answer within {timeout_s:g} s") from None
        result = self.respond(request)
        if isinstance(result, BaseException):
            raise result
        texts = list(result)
        body = {"choices": [{"index": i, "message": {"role": "assistant", "content": t},
                             "finish_reason": "stop"} for i, t in enumerate(texts)]}
        return Completion(body, Usage(10, 5 * len(texts)), self.cost_per_call)

    async def stream(self, model: ModelConfig, request: Mapping[str, Any], *,
                     timeout_s: float | None = None) -> AsyncIterator[Mapping[str, Any]]:
        for i, text in enumerate(self.respond(request)):
            yield {"choices": [{"index": i, "delta": {"content": text}, "finish_reason": None}]}

    def cost(self, model: ModelConfig, usage: Usage) -> float:
        return 0.0

    async def ready(self, model: ModelConfig) -> bool:
        return True

    async def close(self) -> None:
        return None


def fail(message: str = "boom") -> UpstreamError:
    return UpstreamError(message)


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(ROOT / "config.yaml")


@pytest.fixture(scope="session")
def classifier(config: Config) -> TaskClassifier:
    return TaskClassifier.from_config(config)


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimSettings(seed=3))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def direct() -> AsyncIterator[DirectUpstream]:
    up = DirectUpstream()
    try:
        yield up
    finally:
        await up.close()


@pytest.fixture
def fake() -> type[FakeUpstream]:
    """The :class:`FakeUpstream` class (tests build one per scenario)."""
    return FakeUpstream
