"""Early stopping in waves against the simulator over HTTP: the exact answer of all N samples
from fewer samples, truthful sample counts, and cancellation that still reaches the upstream."""

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
from proxy.pipeline.extract import extract_number
from proxy.pipeline.service import PipelineService
from proxy.protocol import parse_chat_request
from proxy.serving import RequestContext
from proxy.sim.server import SimServer
from proxy.sim.settings import SimSettings
from proxy.upstream.direct import DirectUpstream

ROOT = Path(__file__).resolve().parents[2]


class Fixed:
    def __init__(self, n: int) -> None:
        self.action = Action(prompt="cot", n=n, aggregator="majority")

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        return Selection(self.action, "test-policy", "v1", "fixed")


def _config(config: Config, url: str, **fanout: object) -> Config:
    return replace(config, models=tuple(replace(m, api_base=url) for m in config.models),
                   fanout=replace(config.fanout, **fanout))


def _math(k: int) -> list[dict]:
    rows = [json.loads(x) for x in (ROOT / "proxy/data/tasks/math.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "test"][:k]


async def _answers(svc: PipelineService, items: list[dict]) -> list[tuple[str | None, dict]]:
    sem = asyncio.Semaphore(8)

    async def one(k: int, item: dict) -> tuple[str | None, dict]:
        req = parse_chat_request({"model": "sim-1", "seed": 1000 * k, "messages": [
            {"role": "user", "content": item["input"]}]}, max_n=16)
        async with sem:
            res = await svc.complete(req, RequestContext(request_id=str(k)))
        return extract_number(res.body["choices"][0]["message"]["content"]), res.body["iapo"]

    return list(await asyncio.gather(*(one(k, item) for k, item in enumerate(items))))


async def test_waves_give_the_answer_of_all_n_from_fewer_samples(config: Config, classifier,
                                                                  sim, direct) -> None:
    items = _math(40)
    full = PipelineService(_config(config, sim.url, early_stop="off"), direct, Fixed(9),
                           classifier=classifier, strategy="parallel")  # the same n=1 samples
    registry = CollectorRegistry()
    waves = PipelineService(_config(config, sim.url, early_stop="waves", stop_risk=0.0), direct,
                            Fixed(9), classifier=classifier, registry=registry)
    all_n = await _answers(full, items)
    waved = await _answers(waves, items)
    assert [a for a, _ in waved] == [a for a, _ in all_n]  # exact: same answer, every question
    for (_, rep), (_, ref) in zip(waved, all_n):
        s = rep["samples"]
        assert s["completed"] + s["failed"] + s["cancelled"] + s["unsent"] == s["requested"] == 9
        assert s["saved_by_early_stop"] == s["cancelled"] + s["unsent"]
        assert s["completed"] >= 5  # the first wave: the fewest that could settle 9
        assert set(rep["votes"]) <= set(ref["votes"])
    used = sum(rep["samples"]["completed"] for _, rep in waved)
    unsent = sum(rep["samples"]["unsent"] for _, rep in waved)
    assert unsent > 0
    counted = registry.get_sample_value("iapo_samples_total", {"task": "math", "outcome": "unsent"})
    assert counted == unsent
    assert used < sum(rep["samples"]["completed"] for _, rep in all_n) == 9 * len(items)


async def test_the_confident_stop_uses_fewer_samples_than_the_exact_one(config: Config,
                                                                         classifier, sim,
                                                                         direct) -> None:
    items = _math(24)
    exact = PipelineService(_config(config, sim.url, early_stop="waves", stop_risk=0.0), direct,
                            Fixed(16), classifier=classifier)
    risky = PipelineService(_config(config, sim.url, early_stop="waves", stop_risk=0.05), direct,
                            Fixed(16), classifier=classifier)
    a = await _answers(exact, items)
    b = await _answers(risky, items)
    assert sum(r["samples"]["completed"] for _, r in b) < sum(r["samples"]["completed"]
                                                              for _, r in a)


@pytest.mark.parametrize("mode, sent", [("waves", 5), ("at_once", 9)])
async def test_client_disconnect_cancels_the_calls_in_flight(config: Config, classifier,
                                                             mode: str, sent: int) -> None:
    sim = SimServer(SimSettings(seed=1, ttft_s=10.0))
    url = await sim.start()
    up = DirectUpstream()
    try:
        svc = PipelineService(_config(config, url, early_stop=mode, stop_risk=0.0), up, Fixed(9),
                              classifier=classifier)
        req = parse_chat_request({"model": "sim-1", "messages": [
            {"role": "user", "content": _math(1)[0]["input"]}]}, max_n=16)
        task = asyncio.ensure_future(svc.complete(req, RequestContext(request_id="r")))
        for _ in range(300):
            await asyncio.sleep(0.01)
            if sim.stats.in_flight == sent:
                break
        assert sim.stats.in_flight == sent
        task.cancel()  # what the server does when the client goes away
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(300):
            if sim.stats.cancelled == sent and not sim.stats.in_flight:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # nothing more is sent after the cancel
        assert (sim.stats.requests, sim.stats.cancelled, sim.stats.completed) == (sent, sent, 0)
        assert sim.stats.in_flight == 0
    finally:
        await up.close()
        await sim.stop()


async def test_failed_samples_are_replaced_by_unsent_ones_and_all_failing_is_502(
        config: Config, classifier, fake) -> None:
    from proxy.errors import UpstreamError

    def flaky(body: Mapping[str, object]) -> object:
        return UpstreamError("simulated failure") if body["seed"] % 2 else ["The answer is 7."]

    cfg = replace(config, fanout=replace(config.fanout, early_stop="waves", stop_risk=0.0))
    up = fake(flaky)
    svc = PipelineService(cfg, up, Fixed(9), classifier=classifier)
    req = parse_chat_request({"model": "sim-1", "seed": 0, "messages": [
        {"role": "user", "content": "What is 3 + 4?"}]}, max_n=16)
    res = await svc.complete(req, RequestContext(request_id="r"))
    s = res.body["iapo"]["samples"]
    # first wave 0..4 (2 fail), then one more per failure: 0..5 give 3 x "7" with 3 pending
    assert res.body["iapo"]["votes"] == {"7": 3} and len(up.calls) == 6
    assert s["completed"] + s["failed"] + s["cancelled"] + s["unsent"] == 9
    assert s["failed"] == sum(1 for c in up.calls if c["seed"] % 2)
    down = fake(lambda b: UpstreamError("simulated failure"))
    svc = PipelineService(cfg, down, Fixed(9), classifier=classifier)
    with pytest.raises(UpstreamError) as err:
        await svc.complete(req, RequestContext(request_id="r"))
    assert "0 of 9 samples succeeded: 9 x simulated failure" in err.value.message
    assert len(down.calls) == 9  # every sample was tried before giving up
