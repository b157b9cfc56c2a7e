"""Draw live samples through the project's upstream layer, concurrently, cached on disk.

A *job* is one pull: prompt ``p`` applied to question ``q`` (with the pipeline's
:func:`proxy.pipeline.rewrite.apply_prompt`), then samples ``j0 .. j0 + n - 1`` of that pair, each
one upstream call with ``n = 1`` and its own seed (:func:`proxy.train.cache.sample_seed`), the
way the proxy's ``parallel`` fan-out sends them. :meth:`LiveSampler.run_jobs` runs every sample of
a batch of jobs at once on the caller's event loop, at most ``concurrency`` calls in flight,
all through one shared :class:`~proxy.upstream.base.Upstream` (one HTTP session).

Each call has our own ``asyncio.timeout`` and is retried (exponential backoff from 0.25 s, at
most ``retries`` times) on transient errors: timeouts, 429 and 5xx / connection failures. Any
other upstream error, or a transient one that outlasts the retries, stops the run with
:class:`LiveError` (what completed stays cached). Prompt rewrites by a prompter model are cached
per (prompt, question) and charged to every pull that uses them, like a request at serving time.

Dollars: every sample used counts, read from the cache or not, so a restarted run follows the
same path; with ``max_cost_usd`` the batch stops with :class:`CostLimitError` as soon as the
total passes it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.config import Config, ModelConfig, PromptConfig
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.pipeline.rewrite import apply_prompt
from proxy.train.cache import (
    SampleCache,
    model_key,
    prompt_key,
    rewrite_key,
    sample_key,
    sample_seed,
)
from proxy.train.errors import CostLimitError, LiveError
from proxy.train.taskset import TaskItem
from proxy.upstream.base import Upstream, UpstreamRateLimited

__all__ = ["Drawn", "Job", "LiveSampler", "Spend"]

_BACKOFF_S = 0.25
_BACKOFF_MAX_S = 8.0


@dataclass
class Spend:
    """What the run has used: samples (cached or new), tokens, dollars; how many upstream calls
    succeeded (``calls``), how many samples came from the cache (``cached``), and retries."""

    samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    cached: int = 0
    retries: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Job:
    """Samples ``first .. first + n - 1`` of (``prompt``, ``item``)."""

    prompt: PromptConfig
    item: TaskItem
    first: int
    n: int


@dataclass(frozen=True)
class Drawn:
    """A job's reply texts and per-sample dollars, and the dollars of its prompt rewrite."""

    texts: tuple[str, ...]
    cost_usd: tuple[float, ...]
    rewrite_usd: float


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, UpstreamTimeout, UpstreamRateLimited)):
        return True
    return isinstance(exc, UpstreamError) and exc.status >= 500


class LiveSampler:
    """See the module docstring. ``on_sample(spend)`` is called after every sample."""

    def __init__(self, config: Config, model: ModelConfig, upstream: Upstream, cache: SampleCache,
                 *, concurrency: int = 32, timeout_s: float | None = None, retries: int = 4,
                 max_cost_usd: float | None = None,
                 on_sample: Callable[[Spend], None] | None = None) -> None:
        if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a finite number of seconds > 0, got {timeout_s!r}")
        if concurrency < 1 or retries < 0:
            raise ValueError(f"concurrency must be >= 1 and retries >= 0, got {concurrency}, {retries}")
        self.config, self.model, self.upstream, self.cache = config, model, upstream, cache
        self.concurrency = concurrency
        self.timeout_s = model.timeout_s if timeout_s is None else timeout_s
        self.retries = retries
        self.max_cost_usd = max_cost_usd
        self.on_sample = on_sample
        self.spend = Spend()
        self._model_key = model_key(model)
        self._sem: asyncio.Semaphore | None = None
        self._rewrites: dict[str, asyncio.Future[tuple[list[dict[str, Any]], float]]] = {}

    async def probe(self) -> None:
        """Raise :class:`LiveError` unless the upstream answers: its ``ready`` check (``GET
        /models`` on the direct path, no tokens); for litellm-routed models, whose ``ready`` only
        checks the key, also one chat call with ``max_tokens: 1``."""
        from proxy.upstream.router import transport_of

        where = self.model.api_base or "embedded simulator"
        failed = f"upstream for model '{self.model.name}' ({where}) is unreachable"
        if not await self.upstream.ready(self.model):
            raise LiveError(f"{failed}; nothing was spent")
        if transport_of(self.model) != "direct":
            body = {"model": self.model.name, "max_tokens": 1,
                    "messages": [{"role": "user", "content": "ping"}]}
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self.upstream.complete(self.model, body, timeout_s=self.timeout_s)
            except (UpstreamError, TimeoutError) as exc:
                raise LiveError(f"{failed} ({exc or 'timeout'}); nothing was spent") from None

    async def _call(self, body: dict[str, Any]) -> Any:
        """One upstream call with our timeout and retries of transient errors."""
        assert self._sem is not None
        for attempt in range(self.retries + 1):
            try:
                async with self._sem:
                    async with asyncio.timeout(self.timeout_s):
                        done = await self.upstream.complete(self.model, body, timeout_s=self.timeout_s)
                self.spend.calls += 1
                return done
            except (UpstreamError, TimeoutError) as exc:
                if not _transient(exc) or attempt == self.retries:
                    what = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                    raise LiveError(f"upstream call failed after {attempt + 1} attempt(s): {what}") from None
                self.spend.retries += 1
                await asyncio.sleep(min(_BACKOFF_MAX_S, _BACKOFF_S * 2 ** attempt))
        raise AssertionError("unreachable")

    async def _messages(self, prompt: PromptConfig, item: TaskItem) -> tuple[list[dict[str, Any]], float]:
        base = [{"role": "user", "content": item.input}]
        if prompt.rewrite is None:
            rewritten = await apply_prompt(prompt, base, self.config, self.upstream)
            return rewritten.messages, 0.0
        key = rewrite_key(self._model_key, prompt_key(prompt), item.key)
        future = self._rewrites.get(key)
        if future is None:  # one rewrite per (prompt, question), shared by concurrent pulls
            future = self._rewrites[key] = asyncio.ensure_future(self._rewrite(key, prompt, base))
        return await asyncio.shield(future)

    async def _rewrite(self, key: str, prompt: PromptConfig,
                       base: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
        rec = self.cache.get(key)
        if rec is None:
            assert self._sem is not None
            for attempt in range(self.retries + 1):
                async with self._sem:
                    done = await apply_prompt(prompt, base, self.config, self.upstream)
                self.spend.calls += 1
                if not done.rewrite_failed or attempt == self.retries:
                    break
                await asyncio.sleep(min(_BACKOFF_MAX_S, _BACKOFF_S * 2 ** attempt))
            rec = {"key": key, "messages": done.messages, "pt": done.usage.prompt_tokens,
                   "ct": done.usage.completion_tokens, "usd": done.cost_usd,
                   "failed": done.rewrite_failed}
            self.cache.put(rec)
        return list(rec["messages"]), float(rec["usd"])

    async def _sample(self, job: Job, j: int, messages: list[dict[str, Any]]) -> tuple[str, float]:
        pkey = prompt_key(job.prompt)
        key = sample_key(self._model_key, pkey, job.item.key, j)
        rec = self.cache.get(key)
        if rec is None:
            body = {"model": self.model.name, "messages": messages,
                    "seed": sample_seed(pkey, job.item.key, j)}
            done = await self._call(body)
            texts = done.texts
            rec = {"key": key, "text": texts[0] if texts else "", "pt": done.usage.prompt_tokens,
                   "ct": done.usage.completion_tokens, "usd": done.cost_usd}
            self.cache.put(rec)
        else:
            self.spend.cached += 1
        s = self.spend
        s.samples += 1
        s.prompt_tokens += int(rec["pt"])
        s.completion_tokens += int(rec["ct"])
        s.cost_usd += float(rec["usd"])
        if self.on_sample is not None:
            self.on_sample(s)
        if self.max_cost_usd is not None and s.cost_usd > self.max_cost_usd:
            raise CostLimitError(f"the dollar limit ${self.max_cost_usd:g} was reached after "
                                 f"{s.samples} samples (${s.cost_usd:.4f})")
        return str(rec["text"]), float(rec["usd"])

    async def _job(self, job: Job) -> Drawn:
        messages, rewrite_usd = await self._messages(job.prompt, job.item)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._sample(job, j, messages))
                     for j in range(job.first, job.first + job.n)]
        out = [t.result() for t in tasks]
        return Drawn(tuple(t for t, _ in out), tuple(c for _, c in out), rewrite_usd)

    async def run_jobs(self, jobs: Sequence[Job]) -> list[Drawn]:
        """Every job's samples, all at once (bounded by ``concurrency``), in job order."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._job(job)) for job in jobs]
        except BaseExceptionGroup as group:
            raise _first(group) from None
        return [t.result() for t in tasks]


def _first(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a task group: a cost-limit stop first, else the first one."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            flat.append(exc)
    return next((e for e in flat if isinstance(e, CostLimitError)), flat[0])
