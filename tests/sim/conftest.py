"""Fixtures for the simulator tests: a zero-latency simulator on a free port, an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.sim.server import SimServer
from proxy.sim.settings import SimSettings


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimSettings(seed=1))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
