"""Draw N samples of one request from the upstream, in parallel, delivered as they complete.

Strategies:

- ``parallel`` — concurrent calls with ``n=1``. Samples arrive one by one, so a majority vote
  can stop early and cancel the rest.
- ``n`` — one call with ``n=k`` per batch of ``k`` samples sent (for upstreams that honour
  ``n``: one prompt prefill, one connection). ``len(choices)`` is checked; a short answer is
  topped up with calls for the missing indices (at most two top-ups; what is still missing
  counts as failed). A batch arrives at once, so nothing in it can be saved by stopping early.
- ``auto`` (:func:`choose_strategy`) — ``parallel`` when early stopping can act (majority vote,
  ``fanout.early_stop`` not ``off``, N > 1) or the model does not support ``n``; else ``n``.

**Sending in waves.** A run sends ``first`` samples on entering (all N by default) and, each
time it is about to wait with samples unsent, as many more as its ``refill`` says
(:meth:`FanOut.run`). Samples are sent in index order, and sample ``i`` is the same request
whenever it is sent, so stopping early in waves sees a prefix of the same samples.

**Early stopping for majority voting** (``fanout.early_stop``; the loop is in
:mod:`proxy.pipeline.service`, the stopping tests in :mod:`proxy.pipeline.vote`):

- ``off`` — wait for every sample;
- ``at_once`` (default) — send all N, stop once the vote is settled, cancel the calls in flight;
- ``waves`` — send the fewest samples that could settle the vote (``ceil(N/2)`` for the exact
  test, or ``ceil(first_wave * N)`` if more), then, while it is open, only as many as could
  still settle it if every sample in flight agreed with the leader (:meth:`MajorityVote.needed`).
  Samples not needed are never sent (no prefill, no connection); the price is latency on
  contested questions. With the ``n`` strategy each wave is one call with ``n=wave size``.

``fanout.stop_risk`` picks the test: ``0`` — exact, the leader can no longer be overtaken, so
the answer is the one all N samples would give; ``> 0`` — also stop once the estimated chance
that the pending samples change the answer is at most ``stop_risk`` (approximate).

Measured by ``benchmarks/early_stop.py`` (simulator, math test split, ``cot``, N=16, 180
questions, seeds 0-2; completed samples of 16, p50 latency against waiting for all 16; the
README's config reference has the full table): exact ``at_once`` 12.8-13.0 (19-20% fewer) at
0.94-0.99x; exact ``waves`` 12.4-12.5 (22%) at 2.2-2.4x, p90 ~3x (exact stopping cannot do much
better here: even the first settled prefix needs 12.4 of 16 on this set); ``at_once`` with
``stop_risk`` 0.05: 9.6-10.7 (33-40%) at 0.89-1.07x, the same answer as all 16 on 540 of 540
questions; ``waves`` with 0.05: 9.4-9.6 (40-41%) at 2.9-3.0x, 2 answers of 540 changed.
Hence the default ``at_once`` + ``stop_risk: 0.05``; choose ``waves`` where a sent sample
costs even when cancelled (prefill, per-request rate limits) and latency matters less.
``n=16`` in one call has the lowest p50 (0.74-0.79x) and saves nothing;
``benchmarks/fanout.py`` (N=32): one ``n`` call costs the proxy ~4 ms CPU per request against
~17 ms for 32 calls, so Best-of-N, which needs every sample, takes the cheap ``n``.

Seeds: when the request carries ``seed``, a call whose first sample is ``i`` sends
``seed + i``, so the samples are distinct yet reproducible (the same seed draws the same N
samples whatever order they finish in, and whenever they are sent).

A malformed choice (:func:`proxy.upstream.base.parse_choice`) is a failed sample, like an
upstream error; the call's other choices still count.

Limits: a process-wide semaphore (``fanout.max_concurrency``) shared by every request and a
per-request one (``fanout.per_request_concurrency``, shared by all of a request's choices);
each sample has ``fanout.sample_timeout_s`` from when it is sent: waiting for a slot counts
(with a timer only while a limit is full), and the upstream call gets what is left as its
``timeout_s``, which upstreams enforce themselves, capped by the model's own ``timeout_s``
(one timer per call, not two). Leaving the
run's ``async with`` block —
normally, by an exception, or because the enclosing task was cancelled (client disconnect) —
cancels every pending call, which closes its HTTP connection, and sends nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

from proxy.config import FanoutConfig, ModelConfig
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.upstream.base import Completion, Upstream, Usage, parse_choice

__all__ = ["STRATEGIES", "FanOut", "FanoutCounts", "FanoutRun", "Sample", "choose_strategy", "offset_seed"]

log = logging.getLogger(__name__)
STRATEGIES = ("auto", "parallel", "n")
_MAX_TOPUPS = 2
_SEED_MASK = (1 << 63) - 1
_PER_CALL = frozenset({"n", "stream", "stream_options"})  # set per call, never by the request
_MAX_ERROR_CHARS = 400  # per distinct failure in a 502's message: enough for a key hint whole


class Sample(NamedTuple):
    """One generated choice; ``index`` is its position in the fan-out (fixed when requested,
    not arrival order); ``cost_usd`` is its share of its call's cost. (A tuple: one is made
    per sample, at a third of a frozen dataclass's cost.)"""

    index: int
    text: str
    finish_reason: str | None
    cost_usd: float
    choice: Mapping[str, Any]  # the upstream's choice as received (content parts: as text)


@dataclass(slots=True)
class FanoutCounts:
    """What happened to the requested samples, and the total usage and cost of the calls.
    Once the run has ended, ``requested == completed + failed + cancelled + unsent``:
    ``cancelled`` were sent (or received but not delivered) and cancelled, ``unsent`` were
    never sent (early stopping in waves)."""

    requested: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    unsent: int = 0
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
            timeout_s: float | None = None, first: int | None = None,
            refill: Refill | None = None) -> FanoutRun:
        """A run of ``n`` samples; use as ``async with fan.run(...) as run: async for s in run``.

        ``first`` samples (default all ``n``) are sent on entering; whenever the run is about
        to wait with samples unsent, ``refill(run)`` says how many more to send (none by
        default; :meth:`FanoutRun.launch` sends more at any time). When nothing is in flight
        and the refill sends nothing, the run ends; the samples never sent count as unsent."""
        if strategy not in ("parallel", "n"):
            raise ValueError(f"unknown strategy {strategy!r}")
        return FanoutRun(self, model, body, n, strategy, limit or self.request_limit(),
                         timeout_s or self.config.sample_timeout_s,
                         n if first is None else first, refill)


Refill = Callable[["FanoutRun"], int]
"""How many more samples a run should send before it waits (see :meth:`FanOut.run`)."""


def offset_seed(body: Mapping[str, Any], offset: int) -> dict[str, Any]:
    """A copy of ``body`` with its integer ``seed``, if it has one, moved by ``offset``: each
    sample (and each choice) of a seeded request gets its own seed, still reproducible."""
    out = dict(body)
    if offset and isinstance(out.get("seed"), int):
        out["seed"] = (out["seed"] + offset) & _SEED_MASK
    return out


async def _acquire_both(first: asyncio.Semaphore, second: asyncio.Semaphore) -> None:
    """Acquire ``first`` then ``second``; on failure (cancelled, timed out) hold neither."""
    await first.acquire()
    try:
        await second.acquire()
    except BaseException:
        first.release()
        raise


class FanoutRun:
    """One request's samples as an async iterator, in arrival order. Samples are sent in
    index order (0 .. n-1); a sample's index and seed do not depend on when it is sent."""

    __slots__ = ("_body", "_buffer", "_error_kinds", "_fan", "_first", "_first_error", "_limit",
                 "_model", "_pending", "_refill", "_strategy", "_timeout", "_topups", "counts",
                 "next_index")

    def __init__(self, fan: FanOut, model: ModelConfig, body: Mapping[str, Any], n: int,
                 strategy: str, limit: asyncio.Semaphore, timeout_s: float, first: int,
                 refill: Refill | None) -> None:
        self._fan, self._model, self._strategy = fan, model, strategy
        self._body = body if _PER_CALL.isdisjoint(body) else {
            k: v for k, v in body.items() if k not in _PER_CALL}  # read-only: _call copies
        self._limit, self._timeout = limit, timeout_s
        self._first, self._refill = first, refill
        self.counts = FanoutCounts(requested=n)
        self._pending: dict[asyncio.Task[Completion], tuple[int, int]] = {}  # -> (k, first index)
        self._buffer: list[Sample] = []
        self._topups = 0
        self.next_index = 0  # the first unsent sample
        self._first_error: UpstreamError | None = None  # for check(), with every error's kind:
        self._error_kinds: set[tuple[type, int]] = set()

    @property
    def in_flight(self) -> int:
        """Samples sent whose calls have not ended."""
        return sum(k for k, _ in self._pending.values())

    @property
    def unsent(self) -> int:
        """Samples not sent yet."""
        return self.counts.requested - self.next_index

    @property
    def pending(self) -> int:
        """Samples not yet delivered nor failed (in flight, buffered or unsent)."""
        return self.in_flight + len(self._buffer) + self.unsent

    @property
    def buffered(self) -> int:
        """Samples already received but not yet delivered (free to consume)."""
        return len(self._buffer)

    @property
    def pending_min_index(self) -> float:
        """The lowest sample index still pending (``inf`` when none)."""
        firsts = [first for _, first in self._pending.values()] + [s.index for s in self._buffer]
        return min(firsts, default=self.next_index if self.unsent else math.inf)

    def launch(self, k: int) -> None:
        """Send the next ``k`` samples (at most those unsent): one call with ``n=k`` for the
        ``n`` strategy, else ``k`` calls."""
        k = max(0, min(k, self.unsent))
        if self._strategy == "n" and k > 1:
            self._spawn(k, self.next_index)
        else:
            for i in range(k):
                self._spawn(1, self.next_index + i)
        self.next_index += k

    async def __aenter__(self) -> FanoutRun:
        self.launch(self._first)
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.cancel()

    def __aiter__(self) -> FanoutRun:
        return self

    async def __anext__(self) -> Sample:
        while not self._buffer:
            if self._refill is not None and self.unsent:
                self.launch(self._refill(self))
            if not self._pending:
                raise StopAsyncIteration
            done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: self._pending[t][1]):
                self._collect(task, *self._pending.pop(task))
        self.counts.completed += 1
        return self._buffer.pop(0)

    async def single(self) -> Sample:
        """The sample of a one-sample run, drawn in the caller's task (N = 1 has nothing to
        overlap or stop early), used instead of ``async with``: a top-up still pending when it
        ends is cancelled, and it raises as :meth:`check` does."""
        self.next_index = 1
        self.counts.calls += 1
        try:
            done = await self._call(1, 0)
        except asyncio.CancelledError:
            self.counts.cancelled += 1
            raise
        except Exception as exc:  # noqa: BLE001 - counted like a fan-out sample's failure
            self._record(None, exc, 1, 0)
        else:
            self._record(done, None, 1, 0)
        if self._buffer:  # the usual case: no top-up to wait for, nothing to check
            self.counts.completed += 1
            return self._buffer.pop()
        try:
            sample = await anext(self, None)  # a top-up's sample, if any
        finally:
            await self.cancel()
        self.check()
        assert sample is not None  # check() raised otherwise
        return sample

    async def cancel(self) -> None:
        """Cancel every pending call and wait for them to end; counts them (and any buffered
        samples) as cancelled, and samples not sent as unsent."""
        if not self._pending and not self._buffer and self.next_index >= self.counts.requested:
            return  # the run ended with everything delivered or failed
        tasks = list(self._pending)
        self.counts.cancelled += self.in_flight + len(self._buffer)
        self.counts.unsent += self.unsent
        self.next_index = self.counts.requested
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

    def _spawn(self, k: int, first: int) -> None:
        task = asyncio.ensure_future(self._call(k, first))
        self.counts.calls += 1
        self._pending[task] = (k, first)

    async def _call(self, k: int, first: int) -> Completion:
        body = self._body  # upstreams only read it
        if first or k > 1:
            sent = offset_seed(body, first)
            if k > 1:
                sent["n"] = k
            body = sent
        # The sample's time runs from here: waiting for a slot counts, and the upstream, which
        # enforces ``timeout_s`` itself (the Upstream contract, capped by the model's own
        # ``timeout_s``), gets what is left of it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        limit, global_limit = self._limit, self._fan.global_limit
        if limit.locked() or global_limit.locked():
            async with asyncio.timeout_at(deadline):
                await _acquire_both(limit, global_limit)
        else:
            await _acquire_both(limit, global_limit)  # free slots: no wait, no timer
        try:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            return await self._fan.upstream.complete(self._model, body, timeout_s=left)
        finally:
            global_limit.release()
            limit.release()

    def _collect(self, task: asyncio.Task[Completion], k: int, first: int) -> None:
        exc = task.exception()
        self._record(None if exc is not None else task.result(), exc, k, first)

    def _fail(self, exc: BaseException | None, k: int) -> None:
        """Count ``k`` samples failed by ``exc`` (for :meth:`check` and the summary)."""
        self.counts.failed += k
        if isinstance(exc, (TimeoutError, UpstreamTimeout)):
            self.counts.timeouts += k
            return
        msg = exc.message if isinstance(exc, UpstreamError) else type(exc).__name__
        self._error_kinds.add((type(exc), getattr(exc, "status", 500)))
        if isinstance(exc, UpstreamError) and self._first_error is None:
            self._first_error = exc
        self.counts.errors[msg[:_MAX_ERROR_CHARS]] += k
        if not isinstance(exc, UpstreamError):
            log.error("sample call failed unexpectedly", exc_info=exc)

    def _record(self, done: Completion | None, exc: BaseException | None, k: int,
                first: int) -> None:
        """Count a call's outcome; buffer its samples (topping up a reply short of choices)."""
        if exc is not None or done is None:
            self._fail(exc, k)
            return
        self.counts.usage += done.usage
        self.counts.cost_usd += done.cost_usd
        choices = list(done.body.get("choices") or [])[:k]
        share = done.cost_usd / max(len(choices), 1)
        for j, choice in enumerate(choices):
            parsed = parse_choice(choice)
            if parsed is None:  # that sample failed; the call's others still count
                self._fail(UpstreamError(f"upstream '{self._model.name}' returned a malformed "
                                         "choice"), 1)
                continue
            text, choice = parsed
            reason = choice.get("finish_reason")
            self._buffer.append(Sample(first + j, text, reason if isinstance(reason, str) else None,
                                       share, choice))
        short = k - len(choices)
        if short > 0:
            if self._topups < _MAX_TOPUPS:
                self._topups += 1
                log.info("upstream returned %d of %d choices; topping up", len(choices), k)
                self._spawn(short, first + len(choices))
            else:
                self.counts.failed += short
                self.counts.errors[f"upstream returned {len(choices)} of {k} choices"] += short
