"""The inference-aware :class:`proxy.serving.ChatService`: classify → weights → action → rewrite →
fan out → aggregate.

**The client's ``n``** keeps its OpenAI meaning: how many choices come back. Each returned choice
is the aggregate of its own N samples (N from the policy's action), so a request draws
``n * N`` samples; all of one request's samples share the per-request concurrency cap.

**Response.** A normal ``chat.completion`` whose ``usage`` sums every sample, the prompter call
and the judge calls, plus an ``iapo`` object: ``task`` and ``task_source``, ``weights`` and
``weights_source``, ``action`` (prompt, n, aggregator, scorer, strategy), ``policy`` (id,
version, rule), ``samples`` (requested, completed, failed, cancelled, unsent,
saved_by_early_stop: requested = completed + failed + cancelled + unsent, where ``cancelled``
were sent and cancelled and ``unsent`` never sent; saved = cancelled + unsent by early stop),
``votes`` (answer -> count, majority) or ``scores`` (per sample: objective scores, utility,
Best-of-N; empty when one sample succeeded: nothing to choose, so no scorer or judge is called),
``cost_usd``, ``rewrite_failed``, ``judge_errors``. ``votes``/``scores`` describe choice 0;
with ``n > 1`` ``per_choice`` lists them for every choice. Headers: ``x-iapo-task``,
``x-iapo-action`` (``cot;n=9;majority``), ``x-iapo-samples``
(``requested=9;completed=6;failed=0;cancelled=1;unsent=2``), ``x-iapo-cost-usd``,
``x-iapo-policy`` (``id@version``).

**As sent.** A request that offers the model ``tools`` (or legacy ``functions``), unless its
``tool_choice`` is ``"none"``, gets one sample with the conversation as sent (policy rule
``tools``): a tool call is an action to take, not an answer to vote on or score; so does one
asking for structured output (``response_format`` ``json_object`` / ``json_schema``; rule
``response_format``). Every returned
choice is the chosen sample's upstream choice as sent (its ``tool_calls``, ``refusal``,
``logprobs`` and whatever else the provider adds), with the proxy's id, model and usage.

**Streaming.** With one sample per choice and ``n == 1`` the upstream stream is passed through
(after the prompt rewrite). Otherwise the service yields :data:`KEEP_ALIVE` (the server writes
it as the SSE comment ``: keep-alive``) about every ``keepalive_s`` while sampling, then streams
the chosen answers as chunks; the last content chunk carries the ``iapo`` object, followed by a
usage chunk when ``stream_options.include_usage``. The headers known before sampling (task,
action, policy) are put in ``ctx.response_headers`` before the first yield.

**Cancellation.** When the handler task is cancelled (client disconnect) or the stream is
closed, every sample call in flight is cancelled (:mod:`proxy.pipeline.fanout`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from proxy.actions import ActionSource, Selection, StaticActions
from proxy.config import Action, Config, ModelConfig, PromptConfig
from proxy.errors import InvalidRequest, NotFound
from proxy.pipeline.classify import TaskClassifier, TaskDecision, last_user_text
from proxy.pipeline.extract import extractor_for
from proxy.pipeline.fanout import (
    FanOut,
    FanoutCounts,
    FanoutRun,
    Refill,
    choose_strategy,
    offset_seed,
)
from proxy.pipeline.metrics import PipelineMetrics
from proxy.pipeline.rewrite import Rewritten, apply_prompt
from proxy.pipeline.scorers import Scorers, best_index, utility
from proxy.pipeline.vote import MajorityVote
from proxy.pipeline.weights import MODEL_ALIAS_PREFIX, ResolvedWeights, resolve_weights
from proxy.protocol import ChatRequest, chunk, completion_body, new_id, to_upstream
from proxy.serving import KEEP_ALIVE, ChatResult, RequestContext, is_keep_alive
from proxy.upstream.base import Upstream, Usage, usage_of
from proxy.upstream.direct import provider_model_name

__all__ = ["KEEP_ALIVE", "PipelineService", "is_keep_alive"]  # KEEP_ALIVE etc. from serving


@dataclass(frozen=True, slots=True)
class _Plan:
    task: TaskDecision
    weights: ResolvedWeights
    selection: Selection
    model: ModelConfig
    prompt: PromptConfig
    n: int
    aggregator: str
    scorer: str | None
    strategy: str


@dataclass
class _Choice:
    text: str
    finish_reason: str
    counts: FanoutCounts
    upstream: Mapping[str, Any]  # the chosen sample's choice object as the upstream sent it
    saved: int = 0
    votes: dict[str, int] | None = None
    scores: list[dict[str, Any]] | None = None
    judge_errors: int = 0
    usage: Usage = Usage()
    cost_usd: float = 0.0


@dataclass(slots=True)
class _Answer:
    """Every choice of a request, with their usage and cost summed (prompter and judges too)."""

    plan: _Plan
    rewritten: Rewritten
    choices: list[_Choice]
    usage: Usage = Usage()
    cost_usd: float = 0.0

    def __post_init__(self) -> None:
        prompt, completion = self.rewritten.usage.prompt_tokens, self.rewritten.usage.completion_tokens
        cost = self.rewritten.cost_usd
        for c in self.choices:
            prompt += c.counts.usage.prompt_tokens + c.usage.prompt_tokens
            completion += c.counts.usage.completion_tokens + c.usage.completion_tokens
            cost += c.counts.cost_usd + c.cost_usd
        self.usage, self.cost_usd = Usage(prompt, completion), cost


_AS_SENT = Action(prompt="plain", n=1, aggregator="best_of_n")


def _as_sent(req: ChatRequest) -> str | None:
    """Why the request must get one sample of the conversation as sent, if it must: it offers
    tools (or legacy functions) the model may call (``"tools"``: a tool call is an action to
    take, not an answer to vote on), or it asks for structured output (``"response_format"``:
    a rewrite would contradict the schema, and the extractors read prose)."""
    offered = req.extra.get("tools") or req.extra.get("functions")
    if offered and req.extra.get("tool_choice", req.extra.get("function_call")) != "none":
        return "tools"
    fmt = req.extra.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        return "response_format"
    return None


def _message(c: _Choice) -> dict[str, Any]:
    """The chosen sample's message as the upstream sent it (tool calls, refusal, whatever else
    the provider adds), as the assistant's."""
    message = c.upstream.get("message")
    if not isinstance(message, dict):
        return {"role": "assistant", "content": c.text}
    return {**message, "role": "assistant"}


class PipelineService:
    """See the module docstring. ``actions`` defaults to :class:`StaticActions`; for an object
    with ``current`` (a policy store: property or method) the current policy set is taken once
    per request, and its ``prompt(id)`` is preferred over the config's prompt library.
    ``early_stop`` overrides ``fanout.early_stop``: ``False`` is ``off``, ``True`` keeps the
    configured mode (``at_once`` where that is ``off``)."""

    def __init__(self, config: Config, upstream: Upstream, actions: ActionSource | None = None, *,
                 classifier: TaskClassifier | None = None,
                 registry: CollectorRegistry | None = None, strategy: str = "auto",
                 early_stop: bool | None = None, keepalive_s: float = 1.0) -> None:
        self.config = config
        self.upstream = upstream
        self._models = {m.name: m for m in config.models}
        self._tasks = {t.name: t for t in config.tasks}
        self.actions: ActionSource = actions or StaticActions(config)
        self.classifier = classifier or TaskClassifier.from_config(config)
        self.metrics = PipelineMetrics(registry)
        self.fan = FanOut(upstream, config.fanout)
        self.scorers = Scorers(config, upstream)
        self.strategy = strategy
        mode = config.fanout.early_stop
        if early_stop is not None:  # False: off; True: the configured mode, at_once if off
            mode = ("at_once" if mode == "off" else mode) if early_stop else "off"
        self.early_stop_mode = mode
        self.early_stop = mode != "off"
        self.keepalive_s = keepalive_s

    async def close(self) -> None:
        """Close the scorers' HTTP session (the upstream belongs to the caller)."""
        await self.scorers.close()

    async def aclose(self) -> None:
        """Alias of :meth:`close` (the app's lifecycle calls ``aclose``)."""
        await self.close()

    # -- planning ---------------------------------------------------------------------------
    def _model(self, name: str) -> ModelConfig:
        model = self._models.get(name)
        if model is None and name.startswith(MODEL_ALIAS_PREFIX) and self.config.models:
            return self.config.models[0]
        if model is None:
            raise NotFound(f"The model '{name}' does not exist", param="model",
                           code="model_not_found")
        return model

    def plan(self, req: ChatRequest, ctx: RequestContext) -> _Plan:
        """Decide task, weights and action for a request (no upstream calls). A key's
        ``max_samples`` bounds the request's samples: N per choice at most ``max_samples // n``,
        the policy's best action within that where it has one (else its own, clamped); 400
        when ``n`` alone is over it."""
        if ctx.max_samples is not None and req.n > ctx.max_samples:
            raise InvalidRequest(f"n={req.n} is more than this API key's max_samples "
                                 f"({ctx.max_samples})", param="n")
        model = self._model(req.model)
        task = self.classifier.classify(req.messages, req.hints, ctx.headers)
        weights = resolve_weights(self.config, req.hints, ctx.headers, req.model, ctx.profile)
        snapshot = getattr(self.actions, "current", None)  # a policy store's current set
        if callable(snapshot):
            snapshot = snapshot()
        source = snapshot if hasattr(snapshot, "select") else self.actions
        cap = None if ctx.max_samples is None else ctx.max_samples // req.n
        selection = source.select(task.task, weights.weights, cap)
        as_sent = _as_sent(req)
        if as_sent is not None:
            selection = Selection(_AS_SENT, selection.policy_id, selection.policy_version, as_sent)
        action = selection.action
        lookup = getattr(source, "prompt", None)
        prompt = (lookup(action.prompt) if callable(lookup) else None) \
            or self.config.prompts.get(action.prompt) or PromptConfig(id=action.prompt)
        task_cfg = self._tasks.get(task.task)
        n = max(1, min(action.n, self.config.fanout.n_max))
        if cap is not None:  # the source chose within the cap where it could: clamp the rest
            n = min(n, cap)
        scorer = action.scorer or (task_cfg.scorer if task_cfg else None)
        strategy = choose_strategy(self.strategy, model, action.aggregator, n, self.early_stop)
        return _Plan(task, weights, selection, model, prompt, n, action.aggregator, scorer, strategy)

    # -- sampling and aggregation -------------------------------------------------------------
    def _extractor(self, task: str) -> Callable[[str], str | None]:
        task_cfg = self._tasks.get(task)
        return extractor_for(task_cfg.extractor if task_cfg else None,
                             task_cfg.answer_regex if task_cfg else None)

    async def _single(self, plan: _Plan, body: Mapping[str, Any],
                      limit: asyncio.Semaphore) -> _Choice:
        """N = 1: one call in the request's own task; the choice is that sample (one vote, or
        no scores: nothing to choose between)."""
        run = self.fan.run(plan.model, body, 1, limit=limit, first=0)
        try:
            sample = await run.single()
        finally:
            self._observe(plan, run)
        reason = sample.finish_reason or "stop"
        if plan.aggregator != "majority":
            return _Choice(sample.text, reason, run.counts, sample.choice, scores=[])
        answer = self._extractor(plan.task.task)(sample.text)
        return _Choice(sample.text, reason, run.counts, sample.choice,
                       votes={} if answer is None else {answer: 1})

    async def _choice(self, plan: _Plan, body: Mapping[str, Any], limit: asyncio.Semaphore,
                      question: str) -> _Choice:
        if plan.n == 1:
            return await self._single(plan, body, limit)
        if plan.aggregator == "majority":
            extract = self._extractor(plan.task.task)
            vote, got, saved = MajorityVote(self.config.fanout.stop_risk), {}, 0
            need = min(self.config.fanout.min_success, plan.n)
            first, refill = self._waves(vote, plan.n, need)
            run = self.fan.run(plan.model, body, plan.n, strategy=plan.strategy, limit=limit,
                               first=first, refill=refill)
            try:
                async with run:
                    async for sample in run:
                        got[sample.index] = sample
                        vote.add(extract(sample.text), sample.index)
                        # samples already received are free: vote them all before stopping
                        if (self.early_stop and run.pending and not run.buffered
                                and run.counts.completed >= need
                                and vote.decided(run.pending, run.pending_min_index)):
                            saved = run.pending
                            await run.cancel()
                            break
                    run.check()
            finally:
                self._observe(plan, run, saved)
            pick = got[vote.first_index[vote.leader] if vote.leader is not None else min(got)]
            return _Choice(pick.text, pick.finish_reason or "stop", run.counts, pick.choice, saved,
                           votes=dict(vote.counts))
        run = self.fan.run(plan.model, body, plan.n, strategy=plan.strategy, limit=limit)
        try:
            async with run:
                samples = [s async for s in run]
                run.check()
        finally:
            self._observe(plan, run)
        if len(samples) == 1:  # nothing to choose between: no scorer (nor judge) call
            win = samples[0]
            return _Choice(win.text, win.finish_reason or "stop", run.counts, win.choice,
                           scores=[])
        report = await self.scorers.score(plan.scorer, question, [s.text for s in samples])
        self.metrics.add_cost(plan.task.task, report.cost_usd)
        w = plan.weights.weights
        utils = [utility(sc, w, s.cost_usd, self.config.cost_unit_usd)
                 for sc, s in zip(report.scores, samples)]
        best = best_index(utils) if samples else 0
        scores = [{"index": s.index, "scores": sc, "utility": round(u, 6)}
                  for s, sc, u in zip(samples, report.scores, utils)]
        if report.judge_errors:
            self.metrics.judge_errors.labels(plan.scorer or "").inc(report.judge_errors)
        win = samples[best]
        return _Choice(win.text, win.finish_reason or "stop", run.counts, win.choice, scores=scores,
                       judge_errors=report.judge_errors, usage=report.usage,
                       cost_usd=report.cost_usd)

    def _observe(self, plan: _Plan, run: FanoutRun, saved: int = 0) -> None:
        """Count an ended run's samples and cost, whether its request succeeds or not."""
        c = run.counts
        self.metrics.observe(plan.task.task, plan.n, c.completed, c.failed, c.cancelled, saved,
                             c.cost_usd, c.unsent)

    def _waves(self, vote: MajorityVote, n: int, need: int) -> tuple[int | None, Refill | None]:
        """``(first, refill)`` for a majority run: all at once unless ``early_stop`` is
        ``waves``; then the larger of ``ceil(first_wave * n)`` and the fewest samples that
        could decide the vote, and later only what could still decide it (and reach
        ``min_success``) if everything in flight agreed with the leader."""
        if self.early_stop_mode != "waves":
            return None, None
        first = max(vote.needed(0, n, 0), math.ceil(self.config.fanout.first_wave * n - 1e-9),
                    need)

        def refill(run: FanoutRun) -> int:
            short = need - run.counts.completed - run.in_flight
            return max(vote.needed(run.in_flight, run.unsent, run.next_index), short)
        return min(first, n), refill

    async def answer(self, req: ChatRequest, ctx: RequestContext) -> _Answer:
        """Plan, rewrite, sample and aggregate every choice of a request."""
        plan = self.plan(req, ctx)
        rewritten = await self._rewrite(req, plan)
        body = to_upstream(req, provider_model_name(plan.model), messages=rewritten.messages,
                           single=True)
        limit = self.fan.request_limit()
        question = last_user_text(req.messages)
        if req.n == 1:
            choices = [await self._choice(plan, body, limit, question)]
        else:  # each choice its own seeds: a seeded n=3 gives three different answers
            tasks = [asyncio.ensure_future(self._choice(plan, offset_seed(body, i * plan.n), limit,
                                                        question))
                     for i in range(req.n)]
            try:
                choices = list(await asyncio.gather(*tasks))
            finally:  # on the first failure (or cancellation) stop the other choices' samples
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return _Answer(plan, rewritten, choices)  # each run counted its metrics as it ended

    async def _rewrite(self, req: ChatRequest, plan: _Plan) -> Rewritten:
        """The request's messages with the plan's prompt applied; counts a prompter failure and
        the prompter's cost."""
        rewritten = await apply_prompt(plan.prompt, req.messages, self.config, self.upstream)
        if rewritten.rewrite_failed:
            self.metrics.rewrite_failures.labels(plan.prompt.id).inc()
        self.metrics.add_cost(plan.task.task, rewritten.cost_usd)
        return rewritten

    # -- rendering ----------------------------------------------------------------------------
    @staticmethod
    def _headers(plan: _Plan) -> dict[str, str]:
        sel = plan.selection
        return {"x-iapo-task": plan.task.task,
                "x-iapo-action": f"{plan.prompt.id};n={plan.n};{plan.aggregator}",
                "x-iapo-policy": f"{sel.policy_id}@{sel.policy_version}"}

    @staticmethod
    def _iapo(ans: _Answer) -> dict[str, Any]:
        plan, sel = ans.plan, ans.plan.selection
        requested = completed = failed = cancelled = unsent = saved = judge_errors = 0
        detail: list[dict[str, Any]] = []
        for c in ans.choices:
            counts = c.counts
            requested += counts.requested
            completed += counts.completed
            failed += counts.failed
            cancelled += counts.cancelled
            unsent += counts.unsent
            saved += c.saved
            judge_errors += c.judge_errors
            detail.append({"votes": c.votes} if c.votes is not None else {"scores": c.scores})
        obj: dict[str, Any] = {
            "task": plan.task.task, "task_source": plan.task.source,
            "task_score": round(plan.task.score, 4),
            "weights": dict(plan.weights.weights), "weights_source": plan.weights.source,
            "action": {"prompt": plan.prompt.id, "n": plan.n, "aggregator": plan.aggregator,
                       "scorer": plan.scorer if plan.aggregator == "best_of_n" else None,
                       "strategy": plan.strategy},
            "policy": {"id": sel.policy_id, "version": sel.policy_version, "rule": sel.rule},
            "samples": {"requested": requested, "completed": completed, "failed": failed,
                        "cancelled": cancelled, "unsent": unsent, "saved_by_early_stop": saved},
            "cost_usd": round(ans.cost_usd, 8),
            "rewrite_failed": ans.rewritten.rewrite_failed,
            "judge_errors": judge_errors,
        }
        if detail:
            obj.update(detail[0])
        if len(detail) > 1:
            obj["per_choice"] = detail
        return obj

    def _result_headers(self, ans: _Answer, iapo: Mapping[str, Any]) -> dict[str, str]:
        s = iapo["samples"]
        headers = self._headers(ans.plan)
        headers["x-iapo-samples"] = (f"requested={s['requested']};completed={s['completed']};"
                                     f"failed={s['failed']};cancelled={s['cancelled']};"
                                     f"unsent={s['unsent']}")
        headers["x-iapo-cost-usd"] = f"{ans.cost_usd:.8f}"
        return headers

    async def complete(self, req: ChatRequest, ctx: RequestContext) -> ChatResult:
        ans = await self.answer(req, ctx)
        body = completion_body(req.model, [c.text for c in ans.choices], ans.usage.to_dict(),
                               finish_reasons=[c.finish_reason for c in ans.choices])
        for out, c in zip(body["choices"], ans.choices):  # the chosen sample's, as sent
            out["message"], out["logprobs"] = _message(c), c.upstream.get("logprobs")
        body["iapo"] = self._iapo(ans)
        return ChatResult(body=body, headers=self._result_headers(ans, body["iapo"]))

    async def stream(self, req: ChatRequest, ctx: RequestContext) -> AsyncIterator[dict[str, Any]]:
        plan = self.plan(req, ctx)
        ctx.response_headers.update(self._headers(plan))
        if plan.n == 1 and req.n == 1:
            async for part in self._passthrough(req, plan):
                yield part
            return
        work = asyncio.ensure_future(self.answer(req, ctx))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self.keepalive_s)
                if done:
                    break
                yield KEEP_ALIVE
            ans = work.result()
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        for part in self._chunks(req, ans):
            yield part

    async def _passthrough(self, req: ChatRequest, plan: _Plan) -> AsyncIterator[dict[str, Any]]:
        rewritten = await self._rewrite(req, plan)
        body = to_upstream(req, provider_model_name(plan.model), messages=rewritten.messages)
        part: Mapping[str, Any] | None = None
        outcome = "cancelled"  # unless it ends or fails: the stream was closed (client gone)
        try:
            async for part in self.upstream.stream(plan.model, body):
                out = dict(part)
                out["model"] = req.model
                yield out
            outcome = "completed"
        except Exception:
            outcome = "failed"
            raise
        finally:  # the usage chunk, when the client asked for one, comes last
            self.metrics.observe_one(plan.task.task, outcome,
                                     self.upstream.cost(plan.model, usage_of(part)))

    def _chunks(self, req: ChatRequest, ans: _Answer) -> Sequence[dict[str, Any]]:
        """The answer as a stream: per choice, a role delta, the content in pieces of eight
        words (the first carrying the sample's logprobs whole), then its tool calls."""
        cid, created = new_id(), int(time.time())
        messages = [_message(c) for c in ans.choices]
        out = [chunk(cid, created, req.model, [
            {"index": i, "delta": {"role": "assistant",
                                   "content": None if m.get("content") is None else ""},
             "logprobs": None, "finish_reason": None} for i, m in enumerate(messages)])]
        for i, (c, message) in enumerate(zip(ans.choices, messages)):
            words = c.text.split(" ") if message.get("content") is not None else []
            logprobs = c.upstream.get("logprobs")
            for k in range(0, len(words), 8):
                piece = " ".join(words[k:k + 8]) + (" " if k + 8 < len(words) else "")
                out.append(chunk(cid, created, req.model, [
                    {"index": i, "delta": {"content": piece}, "logprobs": logprobs,
                     "finish_reason": None}]))
                logprobs = None
            calls = message.get("tool_calls")
            if calls:  # whole, in one delta (clients accumulate the pieces of each index)
                out.append(chunk(cid, created, req.model, [
                    {"index": i, "delta": {"tool_calls": [{"index": k, **call}
                                                          for k, call in enumerate(calls)]},
                     "logprobs": None, "finish_reason": None}]))
        final = chunk(cid, created, req.model, [
            {"index": i, "delta": {}, "logprobs": None, "finish_reason": c.finish_reason}
            for i, c in enumerate(ans.choices)])
        final["iapo"] = self._iapo(ans)
        out.append(final)
        if req.include_usage:
            out.append(chunk(cid, created, req.model, [], ans.usage.to_dict()))
        return out
