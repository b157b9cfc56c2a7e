"""PipelineService end to end: against the simulator over HTTP (DirectUpstream) and a fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from proxy.actions import Selection
from proxy.config import Action, Config
from proxy.errors import InvalidRequest, UpstreamError
from proxy.pipeline.service import KEEP_ALIVE, PipelineService
from proxy.protocol import parse_chat_request
from proxy.serving import RequestContext
from proxy.sim.server import SimServer
from proxy.sim.settings import SimSettings

ROOT = Path(__file__).resolve().parents[2]


def with_url(config: Config, url: str) -> Config:
    """The config with every model pointed at ``url``."""
    return replace(config, models=tuple(replace(m, api_base=url) for m in config.models))


class Fixed:
    """An ActionSource that always answers one action."""

    def __init__(self, prompt: str, n: int, aggregator: str = "majority",
                 scorer: str | None = None) -> None:
        self.action = Action(prompt=prompt, n=n, aggregator=aggregator, scorer=scorer)

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        return Selection(self.action, "test-policy", "v1", "fixed")


def _req(content: str, **extra):
    return parse_chat_request({"model": "sim-1", "messages": [{"role": "user", "content": content}],
                               **extra}, max_n=16)


def _ctx(**headers: str) -> RequestContext:
    return RequestContext(request_id="r1", headers=headers)


def _math(split: str = "test", k: int = 120) -> list[dict]:
    rows = [json.loads(x) for x in (ROOT / "proxy/data/tasks/math.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split][:k]


async def _accuracy(svc: PipelineService, items: list[dict]) -> tuple[float, list[dict]]:
    sem = asyncio.Semaphore(16)

    async def one(item: dict) -> tuple[bool, dict]:
        async with sem:
            res = await svc.complete(_req(item["input"]), _ctx())
        got = res.body["iapo"]
        from proxy.pipeline.extract import extract_number
        return extract_number(res.body["choices"][0]["message"]["content"]) == item["answer"], got

    out = await asyncio.gather(*(one(i) for i in items))
    return sum(ok for ok, _ in out) / len(items), [g for _, g in out]


async def test_majority_of_9_beats_one_sample_on_the_math_set(config: Config, classifier, sim,
                                                             direct) -> None:
    cfg = with_url(config, sim.url)
    items = _math(k=120)
    one = PipelineService(cfg, direct, Fixed("cot", 1), classifier=classifier)
    nine = PipelineService(cfg, direct, Fixed("cot", 9), classifier=classifier)
    acc1, _ = await _accuracy(one, items)
    acc9, reports = await _accuracy(nine, items)
    print(f"math cot accuracy over {len(items)}: N=1 {acc1:.3f}, N=9 majority {acc9:.3f}")
    assert len(items) >= 100
    assert acc9 >= acc1 + 0.10, (acc1, acc9)
    rep = reports[0]
    assert rep["task"] == "math" and rep["action"] == {
        "prompt": "cot", "n": 9, "aggregator": "majority", "scorer": None, "strategy": "parallel"}
    s = rep["samples"]
    assert s["requested"] == 9 and s["completed"] + s["cancelled"] + s["failed"] == 9
    assert sum(rep["votes"].values()) <= s["completed"]
    assert rep["policy"] == {"id": "test-policy", "version": "v1", "rule": "fixed"}


async def test_response_shape_usage_and_headers(config: Config, classifier, sim, direct) -> None:
    svc = PipelineService(with_url(config, sim.url), direct, Fixed("cot", 5), classifier=classifier,
                          early_stop=False)
    item = _math(k=1)[0]
    res = await svc.complete(_req(item["input"], n=2), _ctx())
    body = res.body
    assert body["object"] == "chat.completion" and body["model"] == "sim-1"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    iapo = body["iapo"]
    assert iapo["samples"]["completed"] == 10 and len(iapo["per_choice"]) == 2
    # usage sums all 10 samples: each reply has several completion tokens
    assert body["usage"]["completion_tokens"] >= 10 * 3
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert iapo["cost_usd"] > 0 and float(res.headers["x-iapo-cost-usd"]) == pytest.approx(iapo["cost_usd"], rel=1e-3)
    assert res.headers["x-iapo-action"] == "cot;n=5;majority"
    assert res.headers["x-iapo-task"] == "math" and res.headers["x-iapo-policy"] == "test-policy@v1"
    assert res.headers["x-iapo-samples"] == "requested=10;completed=10;failed=0;cancelled=0;unsent=0"
    assert iapo["weights_source"] == "default:balanced" and iapo["task_source"] == "classifier"


async def test_client_disconnect_cancels_pending_upstream_calls(config: Config, classifier) -> None:
    sim = SimServer(SimSettings(seed=1, ttft_s=10.0))
    url = await sim.start()
    from proxy.upstream.direct import DirectUpstream
    up = DirectUpstream()
    try:
        svc = PipelineService(with_url(config, url), up, Fixed("cot", 9), classifier=classifier)
        task = asyncio.ensure_future(svc.complete(_req(_math(k=1)[0]["input"]), _ctx()))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if sim.stats.in_flight == 9:
                break
        assert sim.stats.in_flight == 9
        task.cancel()  # what the server does when the client goes away
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if sim.stats.cancelled == 9:
                break
            await asyncio.sleep(0.01)
        assert sim.stats.cancelled == 9 and sim.stats.completed == 0
    finally:
        await up.close()
        await sim.stop()


async def test_all_samples_failing_is_502_with_what_failed(config: Config, classifier) -> None:
    sim = SimServer(SimSettings(seed=1, error_rate=1.0))
    url = await sim.start()
    from proxy.upstream.direct import DirectUpstream
    up = DirectUpstream()
    try:
        svc = PipelineService(with_url(config, url), up, Fixed("cot", 3), classifier=classifier)
        with pytest.raises(UpstreamError) as err:
            await svc.complete(_req("What is 2 + 2?"), _ctx())
    finally:
        await up.close()
        await sim.stop()
    assert err.value.status == 502 and "0 of 3 samples succeeded" in err.value.message


async def test_early_stop_cancels_samples_that_cannot_change_the_vote(config: Config, classifier,
                                                                      fake) -> None:
    calls = {"n": 0}

    def delay(_b) -> float:
        calls["n"] += 1
        return 0.0 if calls["n"] <= 5 else 5.0

    up = fake(lambda b: ["Thinking... The answer is 7."], delay=delay)
    reg = CollectorRegistry()
    svc = PipelineService(config, up, Fixed("cot", 9), classifier=classifier, registry=reg)
    res = await svc.complete(_req("Tom has 3 apples and buys 4. How many?"), _ctx())
    iapo = res.body["iapo"]
    assert iapo["votes"] == {"7": 5}
    assert iapo["samples"] == {"requested": 9, "completed": 5, "failed": 0, "cancelled": 4,
                               "unsent": 0, "saved_by_early_stop": 4}
    assert up.cancelled == 4
    assert reg.get_sample_value("iapo_samples_saved_total", {"task": "math"}) == 4
    assert reg.get_sample_value("iapo_pipeline_n_count", {"task": "math"}) == 1


async def test_best_of_n_with_judge_through_the_simulator(config: Config, classifier, sim,
                                                          direct) -> None:
    rows = [json.loads(x) for x in (ROOT / "proxy/data/tasks/summarize.jsonl").read_text().splitlines()]
    svc = PipelineService(with_url(config, sim.url), direct, Fixed("plain", 4, "best_of_n", "judge"),
                          classifier=classifier)
    res = await svc.complete(_req(rows[0]["input"]), _ctx())
    iapo = res.body["iapo"]
    assert iapo["task"] == "summarize" and len(iapo["scores"]) == 4
    best = max(iapo["scores"], key=lambda s: s["utility"])
    utils = [s["utility"] for s in iapo["scores"]]
    assert best["utility"] == max(utils)
    assert all(set(s["scores"]) == {"helpfulness", "brevity"} for s in iapo["scores"])
    # usage includes 4 samples and 4 judge calls (the judge prompt repeats the text: many tokens)
    assert res.body["usage"]["prompt_tokens"] > 8 * 20


async def test_junk_judge_through_the_service_still_answers(config: Config, classifier, fake) -> None:
    def respond(b):
        text = b["messages"][-1]["content"]
        return ["I cannot rate this."] if "Rate the response" in text else ["A fine answer."]

    reg = CollectorRegistry()
    svc = PipelineService(config, fake(respond), Fixed("plain", 3, "best_of_n", "judge"),
                          classifier=classifier, registry=reg)
    res = await svc.complete(_req("Tell me about tides", iapo={"task": "general"}), _ctx())
    iapo = res.body["iapo"]
    assert iapo["judge_errors"] == 3 and res.body["choices"][0]["message"]["content"] == "A fine answer."
    assert all(s["scores"]["helpfulness"] is None for s in iapo["scores"])
    assert reg.get_sample_value("iapo_judge_errors_total", {"scorer": "judge"}) == 3


async def test_failing_prompter_falls_back_and_is_counted(config: Config, classifier, fake) -> None:
    def respond(b):
        if "Rewrite the following" in b["messages"][-1]["content"]:
            return UpstreamError("prompter unavailable")
        return ["The answer is 4."]

    up = fake(respond)
    reg = CollectorRegistry()
    svc = PipelineService(config, up, Fixed("rewrite", 1), classifier=classifier, registry=reg)
    res = await svc.complete(_req("What is 2 + 2?"), _ctx())
    assert res.body["iapo"]["rewrite_failed"] is True
    assert up.calls[-1]["messages"][-1]["content"] == "What is 2 + 2?"
    assert reg.get_sample_value("iapo_rewrite_failures_total", {"prompt": "rewrite"}) == 1


async def test_weights_errors_are_400_before_any_upstream_call(config: Config, classifier,
                                                               fake) -> None:
    up = fake(lambda b: ["x"])
    svc = PipelineService(config, up, Fixed("cot", 3), classifier=classifier)
    with pytest.raises(InvalidRequest) as err:
        await svc.complete(_req("hi", iapo={"weights": {"accuracy": -1}}), _ctx())
    assert err.value.param == "iapo.weights"
    with pytest.raises(InvalidRequest):
        await svc.complete(_req("hi"), _ctx(**{"x-iapo-weights": "speed=1"}))
    with pytest.raises(InvalidRequest):
        await svc.complete(_req("hi", iapo={"profile": "nope"}), _ctx())
    assert up.calls == []


async def test_weights_change_which_sample_wins(config: Config, classifier, fake) -> None:
    from proxy.config import ObjectiveScorer
    cfg = replace(config, scorers={**config.scorers, "det": (
        ObjectiveScorer("brevity", "length", {"target_tokens": 3}),
        ObjectiveScorer("helpfulness", "keywords", {"keywords": ["because", "example"]}))})
    replies = iter(["Short.", "Long because for example this explains a lot more detail."] * 2)
    up = fake(lambda b: [next(replies)], delay=lambda b: 0.01 * len(up.calls))
    svc = PipelineService(cfg, up, Fixed("plain", 2, "best_of_n", "det"), classifier=classifier)
    brief = await svc.complete(_req("Why?", iapo={"weights": {"brevity": 1}}), _ctx())
    helpful = await svc.complete(_req("Why?", iapo={"weights": {"helpfulness": 1}}), _ctx())
    assert brief.body["choices"][0]["message"]["content"] == "Short."
    assert helpful.body["choices"][0]["message"]["content"].startswith("Long because")


async def test_stream_with_samples_sends_keepalives_then_the_answer(config: Config, classifier,
                                                                    fake) -> None:
    up = fake(lambda b: ["The answer is 12."], delay=lambda b: 0.15)
    svc = PipelineService(config, up, Fixed("cot", 3), classifier=classifier, keepalive_s=0.05,
                          early_stop=False)
    ctx = _ctx()
    req = _req("What is 3 times 4?", stream=True, stream_options={"include_usage": True})
    parts = [p async for p in svc.stream(req, ctx)]
    assert parts[0] is KEEP_ALIVE and ctx.response_headers["x-iapo-action"] == "cot;n=3;majority"
    chunks = [p for p in parts if p is not KEEP_ALIVE]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The answer is 12."
    assert chunks[-2]["iapo"]["votes"] == {"12": 3}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3 * 15


async def test_stream_single_sample_passes_through(config: Config, classifier, fake) -> None:
    up = fake(lambda b: ["Hel", "lo"])
    svc = PipelineService(config, up, Fixed("plain", 1), classifier=classifier)
    parts = [p async for p in svc.stream(_req("hi", stream=True), _ctx())]
    assert [p["model"] for p in parts] == ["sim-1", "sim-1"] and KEEP_ALIVE not in parts


async def test_closing_the_stream_cancels_sampling(config: Config, classifier, fake) -> None:
    up = fake(lambda b: ["x"], delay=lambda b: 10.0)
    svc = PipelineService(config, up, Fixed("cot", 4), classifier=classifier, keepalive_s=0.02)
    gen = svc.stream(_req("What is 1+1?", stream=True), _ctx())
    assert await gen.__anext__() is KEEP_ALIVE
    await gen.aclose()
    assert up.cancelled == 4


async def test_the_chosen_sample_is_returned_as_the_upstream_sent_it(config: Config, classifier,
                                                                     fake) -> None:
    up = fake(lambda b: ["The answer is 12."])
    plain = up.complete

    async def with_extras(model, request, *, timeout_s=None):  # what providers add to a choice
        done = await plain(model, request, timeout_s=timeout_s)
        for c in done.body["choices"]:
            c["logprobs"] = {"content": [{"token": "12", "logprob": -0.1}]}
            c["message"]["annotations"] = []
        return done

    up.complete = with_extras
    svc = PipelineService(config, up, Fixed("cot", 3), classifier=classifier, early_stop=False)
    got = (await svc.complete(_req("What is 3 times 4?"), _ctx())).body["choices"][0]
    assert got["message"] == {"role": "assistant", "content": "The answer is 12.", "annotations": []}
    assert got["logprobs"] == {"content": [{"token": "12", "logprob": -0.1}]}
    chunks = [p async for p in svc.stream(_req("What is 3 times 4?", stream=True), _ctx())
              if p is not KEEP_ALIVE]
    logprobs = [c["choices"][0]["logprobs"] for c in chunks if c["choices"]]
    assert [lp for lp in logprobs if lp] == [got["logprobs"]]  # once, on the first content chunk
