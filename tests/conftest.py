"""Shared fixtures: the proxy app from the repo's ``config.yaml`` on a free port, with the
embedded simulator's latency overridable, and an ``openai.AsyncOpenAI`` client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from proxy.config import Config, load_config
from proxy.server.app import create_app

REPO = Path(__file__).resolve().parent.parent

StartProxy = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def repo_config() -> Config:
    """The repository's default ``config.yaml``, loaded once."""
    return load_config(REPO / "config.yaml")


def with_simulator(config: Config, **changes: Any) -> Config:
    """``config`` with ``simulator`` fields replaced (e.g. ``ttft_s=0.0``)."""
    return replace(config, simulator=replace(config.simulator, **changes))


@pytest.fixture
def sim_config(repo_config: Config) -> Callable[..., Config]:
    """``sim_config(**changes)``: the default config with ``simulator`` fields replaced."""
    return lambda **changes: with_simulator(repo_config, **changes)


@pytest.fixture
async def start_proxy(repo_config: Config) -> AsyncIterator[StartProxy]:
    """``url = await start_proxy(config=None, ttft_s=0, tpot_s=0, **create_app_kwargs)``: the
    proxy listening on 127.0.0.1:<free port>; ``url`` is the root (no ``/v1``). The app is
    available as ``start_proxy.apps[-1]``; everything stops at teardown."""
    runners: list[web.AppRunner] = []
    apps: list[web.Application] = []

    async def start(config: Config | None = None, *, ttft_s: float = 0.0, tpot_s: float = 0.0,
                    **kwargs: Any) -> str:
        cfg = config or with_simulator(repo_config, ttft_s=ttft_s, tpot_s=tpot_s)
        app = create_app(cfg, **kwargs)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        runners.append(runner)
        apps.append(app)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    start.apps = apps  # type: ignore[attr-defined]
    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def proxy_url(start_proxy: StartProxy) -> str:
    """The proxy on the default config, simulator at zero latency."""
    return await start_proxy()


@pytest.fixture
async def client(proxy_url: str) -> AsyncIterator[Any]:
    """An ``openai.AsyncOpenAI`` client pointed at the proxy."""
    import openai

    async with openai.AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key="unused", max_retries=0) as c:
        yield c
