"""proxy.deadline behaves as asyncio.timeout where the proxy relies on it: every test runs on
both, so a difference is a failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from proxy.deadline import deadline

KINDS: dict[str, Callable[[float | None], Any]] = {"asyncio": asyncio.timeout, "deadline": deadline}


def _stop(timer: Any) -> None:
    if hasattr(timer, "clear"):
        timer.clear()
    else:
        timer.reschedule(None)


@pytest.fixture(params=sorted(KINDS))
def make(request: pytest.FixtureRequest) -> Callable[[float | None], Any]:
    return KINDS[request.param]


async def test_a_block_in_time_ends_normally(make: Callable[[float | None], Any]) -> None:
    async with make(1.0) as timer:
        await asyncio.sleep(0.01)
    assert not timer.expired()


async def test_a_late_block_is_cancelled_and_raises_timeout_error(
        make: Callable[[float | None], Any]) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        async with make(0.05) as timer:
            await asyncio.sleep(5)
    assert timer.expired()
    assert 0.04 <= time.monotonic() - start < 1.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation(
        make: Callable[[float | None], Any]) -> None:
    async def body() -> None:
        async with make(5.0):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(body())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_stopped_and_absent_deadlines_never_fire(make: Callable[[float | None], Any]) -> None:
    async with make(0.02) as timer:
        _stop(timer)
        await asyncio.sleep(0.06)
    assert not timer.expired()
    async with make(None) as timer:
        await asyncio.sleep(0.01)
    when = timer.when() if callable(timer.when) else timer.when  # asyncio's is a method
    assert not timer.expired() and when is None


async def test_nested_deadlines_each_raise_only_their_own(
        make: Callable[[float | None], Any]) -> None:
    async with make(5.0) as outer:  # the inner one fires: caught inside, the outer unaffected
        with pytest.raises(TimeoutError):
            async with make(0.02):
                await asyncio.sleep(5)
        await asyncio.sleep(0.01)
    assert not outer.expired()
    inner_saw: list[type[BaseException]] = []
    with pytest.raises(TimeoutError):  # the outer one fires: the inner block sees a cancellation
        async with make(0.02):
            try:
                async with make(5.0):
                    await asyncio.sleep(5)
            except BaseException as exc:
                inner_saw.append(type(exc))
                raise
    assert inner_saw == [asyncio.CancelledError]
