"""Draw N samples of one request from the upstream, in parallel, delivered as they complete.

Strategies:

- ``parallel`` — N concurrent calls with ``n=1``. Samples arrive one by one, so a majority vote
  can stop early and cancel the rest.
- ``n`` — one call with ``n=N`` (for upstreams that honour ``n``: one prompt prefill, one
  connection). ``len(choices)`` is checked; a short answer is topped up with calls for the
  remainder (at most two top-ups; what is still missing counts as failed). All N arrive at once,
  so nothing can be saved by early stopping.
- ``auto`` (:func:`choose_strategy`) — ``parallel`` when early stopping can act (majority vote,
  ``fanout.early_stop``, N > 1) or the model does not support ``n``; otherwise ``n``. Measured
  on the simulator: ``benchmarks/early_stop.py`` (math, ``cot``, N=16) — early stopping
  completes 19-24% fewer samples (12.4-12.9 of 16) and ~20% fewer completion tokens at
  identical accuracy, which is upstream cost saved where the provider stops generating when
  the connection closes (vLLM does), while ``n=16`` in one call has the lower p50 (0.7x); and
  ``benchmarks/fanout.py`` (N=32) — one ``n`` call costs the proxy ~4 ms CPU per request
  against ~17 ms for 32 calls. So majority voting with early stopping trades some latency and
  CPU for fewer paid samples; Best-of-N needs every sample anyway and takes the cheap ``n``.

Seeds: when the request carries ``seed``, call ``i`` (0-based, in spawn order) sends
``seed + i``, so the samples are distinct yet reproducible (the same seed draws the same N
samples whatever order they finish in).

Limits: a process-wide semaphore (``fanout.max_concurrency``) shared by every request and a
per-request one (``fanout.per_request_concurrency``, shared by all of a request's choices);
each upstream call has ``fanout.sample_timeout_s``. Leaving the run's ``async with`` block —
normally, by an exception, or because the enclosing task was cancelled (client disconnect) —
cancels every pending call, which closes its HTTP connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from proxy.config import FanoutConfig, ModelConfig
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import Completion, Upstream, Usage

__all__ = ["STRATEGIES", "FanOut", "FanoutCounts", "FanoutRun", "Sample", "choose_strategy"]

log = logging.getLogger(__name__)
STRATEGIES = ("auto", "parallel", "n")
_MAX_TOPUPS = 2
_SEED_MASK = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Sample:
    """One generated choice; ``index`` is its position in the fan-out (fixed when requested,
    not arrival order); ``cost_usd`` is its share of its call's cost."""

    index: int
    text: str
    finish_reason: str | None
    cost_usd: float


@dataclass
class FanoutCounts:
    """What happened to the requested samples, and the total usage and cost of the calls."""

    requested: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    timeouts: int = 0
    calls: int = 0
    usage: Usage = Usage()
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """e.g. ``"0 of 9 samples succeeded: 9 timeouts"``."""
        parts = []
        if self.timeouts:
            parts.append(f"{self.timeouts} timeout" + ("s" if self.timeouts != 1 else ""))
        parts += [f"{count} x {msg}" for msg, count in self.errors.most_common(3)]
        return f"{self.completed} of {self.requested} samples succeeded: " + ", ".join(parts)


def choose_strategy(strategy: str, model: ModelConfig, aggregator: str, n: int,
                    early_stop: bool) -> str:
    """Resolve ``auto`` (see the module docstring); other strategies pass through (``n``
    becomes ``parallel`` for a model without ``supports_n``)."""
    if strategy == "auto":
        if n > 1 and aggregator == "majority" and early_stop:
            return "parallel"
        return "n" if model.supports_n else "parallel"
    if strategy == "n" and not model.supports_n:
        return "parallel"
    return strategy


class FanOut:
    """Shared by every request of a process: holds the global concurrency cap."""

    def __init__(self, upstream: Upstream, config: FanoutConfig) -> None:
        self.upstream = upstream
        self.config = config
        self.global_limit = asyncio.Semaphore(config.max_concurrency)

    def request_limit(self) -> asyncio.Semaphore:
        """A new per-request cap (share it among one request's choices)."""
        return asyncio.Semaphore(self.config.per_request_concurrency)

    def run(self, model: ModelConfig, body: Mapping[str, Any], n: int, *,
            strategy: str = "parallel", limit: asyncio.Semaphore | None = None,
            timeout_s: float | None = None) -> FanoutRun:
        """A run of ``n`` samples; use as ``async with fan.run(...) as run: async for s in run``."""
        if strategy not in ("parallel", "n"):
            raise ValueError(f"unknown strategy {strategy!r}")
        return FanoutRun(self, model, body, n, strategy, limit or self.request_limit(),
                         timeout_s or self.config.sample_timeout_s)


class FanoutRun:
    """One request's samples as an async iterator, in arrival order."""

    def __init__(self, fan: FanOut, model: ModelConfig, body: Mapping[str, Any], n: int,
                 strategy: str, limit: asyncio.Semaphore, timeout_s: float) -> None:
        self._fan, self._model, self._strategy = fan, model, strategy
        self._body = {k: v for k, v in body.items() if k not in ("n", "stream", "stream_options")}
        self._limit, self._timeout = limit, timeout_s
        self.counts = FanoutCounts(requested=n)
        self._pending: dict[asyncio.Task[Completion], tuple[int, int]] = {}  # -> (k, first index)
        self._buffer: list[Sample] = []
        self._topups = 0
        self._spawned = 0
        self._first_error: UpstreamError | None = None  # for check(), with every error's kind:
        self._error_kinds: set[tuple[type, int]] = set()

    @property
    def pending(self) -> int:
        """Samples not yet delivered nor failed (in flight or buffered)."""
        return sum(k for k, _ in self._pending.values()) + len(self._buffer)

    @property
    def buffered(self) -> int:
        """Samples already received but not yet delivered (free to consume)."""
        return len(self._buffer)

    @property
    def pending_min_index(self) -> float:
        """The lowest sample index still pending (``inf`` when none)."""
        firsts = [first for _, first in self._pending.values()] + [s.index for s in self._buffer]
        return min(firsts, default=math.inf)

    async def __aenter__(self) -> FanoutRun:
        n = self.counts.requested
        if self._strategy == "n" and n > 1:
            self._spawn(n)
        else:
            for _ in range(n):
                self._spawn(1)
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.cancel()

    def __aiter__(self) -> FanoutRun:
        return self

    async def __anext__(self) -> Sample:
        while not self._buffer:
            if not self._pending:
                raise StopAsyncIteration
            done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: self._pending[t][1]):
                self._collect(task, *self._pending.pop(task))
        self.counts.completed += 1
        return self._buffer.pop(0)

    async def cancel(self) -> None:
        """Cancel every pending call and wait for them to end; counts them as cancelled."""
        tasks = list(self._pending)
        self.counts.cancelled += self.pending
        self._pending.clear()
        self._buffer.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
            for task in tasks:  # retrieve outcomes so none is reported as never retrieved
                if not task.cancelled():
                    task.exception()

    def check(self, min_success: int | None = None) -> None:
        """Raise when fewer than ``min_success`` (default ``fanout.min_success``, at most the
        number requested) samples completed: :class:`UpstreamTimeout` when every failure was a
        timeout, the upstream's own error class and status when every failure was the same kind
        (a 429 stays a 429 with its ``retry-after``), else :class:`UpstreamError` (502); the
        message is :meth:`FanoutCounts.summary`."""
        need = min(min_success or self._fan.config.min_success, self.counts.requested)
        if self.counts.completed >= need:
            return
        message = self.counts.summary() + f" (need {need})"
        if self.counts.timeouts and not self.counts.errors:
            raise UpstreamTimeout(message)
        first = self._first_error
        if first is not None and not self.counts.timeouts and len(self._error_kinds) == 1:
            # every sample failed the same way upstream (e.g. 429, or a 400 for a bad parameter):
            # keep its status and headers (retry-after) so that clients react as to the upstream
            raise type(first)(message, param=first.param, code=first.code, status=first.status,
                              headers=dict(first.headers))
        raise UpstreamError(message)

    def _spawn(self, k: int) -> None:
        task = asyncio.ensure_future(self._call(k, self.counts.calls))
        self.counts.calls += 1
        self._pending[task] = (k, self._spawned)
        self._spawned += k

    async def _call(self, k: int, call_no: int) -> Completion:
        body = dict(self._body)
        if k > 1:
            body["n"] = k
        if isinstance(body.get("seed"), int) and call_no:
            body["seed"] = (body["seed"] + call_no) & _SEED_MASK
        async with self._limit, self._fan.global_limit:
            async with asyncio.timeout(self._timeout):
                return await self._fan.upstream.complete(self._model, body, timeout_s=self._timeout)

    def _collect(self, task: asyncio.Task[Completion], k: int, first: int) -> None:
        exc = task.exception()
        if exc is not None:
            self.counts.failed += k
            if isinstance(exc, (TimeoutError, UpstreamTimeout)):
                self.counts.timeouts += k
            else:
                msg = exc.message if isinstance(exc, UpstreamError) else type(exc).__name__
                self._error_kinds.add((type(exc), getattr(exc, "status", 500)))
                if isinstance(exc, UpstreamError) and self._first_error is None:
                    self._first_error = exc
                self.counts.errors[msg[:120]] += k
                if not isinstance(exc, UpstreamError):
                    log.error("sample call failed unexpectedly", exc_info=exc)
            return
        done = task.result()
        self.counts.usage += done.usage
        self.counts.cost_usd += done.cost_usd
        choices = list(done.body.get("choices") or [])[:k]
        share = done.cost_usd / max(len(choices), 1)
        for j, choice in enumerate(choices):
            text = ((choice.get("message") or {}).get("content") or "")
            self._buffer.append(Sample(first + j, text, choice.get("finish_reason"), share))
        short = k - len(choices)
        if short > 0:
            if self._topups < _MAX_TOPUPS:
                self._topups += 1
                log.info("upstream returned %d of %d choices; topping up", len(choices), k)
                self._spawn(short)
            else:
                self.counts.failed += short
                self.counts.errors[f"upstream returned {len(choices)} of {k} choices"] += short
