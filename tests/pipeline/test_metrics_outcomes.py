"""The pipeline's metrics count every sample and its cost once, whatever the request's fate
(success, a 429, a 502 below ``min_success``, a client disconnect) and on the pass-through
stream; over HTTP against the app with its embedded simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from proxy.actions import Selection
from proxy.config import Action
from proxy.pipeline.classify import TaskClassifier
from proxy.pipeline.service import PipelineService
from proxy.server.state import CONFIG, METRICS, UPSTREAM

CHAT = "/v1/chat/completions"
BODY = {"model": "sim-1", "iapo": {"task": "math"},
        "messages": [{"role": "user", "content": "What is 17 + 25?"}]}
OUTCOMES = ("completed", "failed", "cancelled", "unsent")


class Fixed:
    """An ActionSource that always answers the ``plain`` prompt with ``n`` samples."""

    def __init__(self, n: int, aggregator: str) -> None:
        self.action = Action(prompt="plain", n=n, aggregator=aggregator)

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        return Selection(self.action, "test-policy", "v1", "fixed")


def _service(classifier: TaskClassifier, n: int, aggregator: str = "majority",
             **kwargs: Any) -> Callable[[Any], PipelineService]:
    return lambda app: PipelineService(app[CONFIG], app[UPSTREAM], Fixed(n, aggregator),
                                       classifier=classifier, registry=app[METRICS].registry,
                                       **kwargs)


async def _metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/metrics") as r:
            text = await r.text()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _samples(m: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    return {o: m.get(("iapo_samples_total", frozenset({("task", "math"), ("outcome", o)})), 0.0)
            for o in OUTCOMES}


def _costs(m: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> tuple[float, float]:
    """``(pipeline cost of math, upstream cost of sim-1)``."""
    return (m.get(("iapo_pipeline_cost_usd_total", frozenset({("task", "math")})), 0.0),
            m.get(("iapo_cost_usd_total", frozenset({("model", "sim-1")})), 0.0))


def _n_count(m: Mapping[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    return m.get(("iapo_pipeline_n_count", frozenset({("task", "math")})), 0.0)


async def _post(url: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json=body) as r:
            return r.status, await r.json()


async def test_a_success_counts_once_per_choice(start_proxy, sim_config,
                                                classifier: TaskClassifier) -> None:
    url = await start_proxy(sim_config(ttft_s=0.0, tpot_s=0.0),
                            service_factory=_service(classifier, 3))
    status, body = await _post(url, {**BODY, "n": 2})
    assert status == 200
    m = await _metrics(url)
    got = body["iapo"]["samples"]
    assert _samples(m) == {o: float(got[o]) for o in OUTCOMES}
    assert sum(_samples(m).values()) == 6 and _n_count(m) == 2
    pipeline, upstream = _costs(m)
    assert upstream > 0 and abs(pipeline - upstream) < 1e-12
    assert abs(pipeline - body["iapo"]["cost_usd"]) < 1e-8


async def test_all_rate_limited_samples_are_counted_failed(start_proxy, sim_config,
                                                          classifier: TaskClassifier) -> None:
    url = await start_proxy(sim_config(ttft_s=0.0, tpot_s=0.0,
                                           rate_limit_rate=1.0),
                            service_factory=_service(classifier, 19))
    status, _ = await _post(url, BODY)
    assert status == 429
    m = await _metrics(url)
    assert _samples(m) == {"completed": 0, "failed": 19, "cancelled": 0, "unsent": 0}
    assert _n_count(m) == 1


async def test_below_min_success_keeps_the_completed_samples_cost(
        start_proxy, sim_config, classifier: TaskClassifier) -> None:
    config = sim_config(ttft_s=0.0, tpot_s=0.0, error_rate=0.5, seed=1)
    config = replace(config, fanout=replace(config.fanout, min_success=4))
    url = await start_proxy(config, service_factory=_service(classifier, 4, strategy="parallel"))
    status, _ = await _post(url, BODY)
    assert status == 502
    m = await _metrics(url)
    samples = _samples(m)
    assert samples["completed"] >= 1 and samples["failed"] >= 1  # seed 1: some of each
    assert samples["completed"] + samples["failed"] == 4 and _n_count(m) == 1
    pipeline, upstream = _costs(m)
    assert upstream > 0 and abs(pipeline - upstream) < 1e-12


async def _wait_for(url: str, check: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    for _ in range(200):
        samples = _samples(await _metrics(url))
        if check(samples):
            break
        await asyncio.sleep(0.02)
    return samples


async def test_client_disconnect_mid_fan_out_counts_cancelled(
        start_proxy, sim_config, classifier: TaskClassifier) -> None:
    url = await start_proxy(sim_config(ttft_s=5.0, tpot_s=0.0),
                            service_factory=_service(classifier, 4, strategy="parallel"))
    for body in (BODY, {**BODY, "stream": True}):  # the stream: sampled, then chunked
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as s:
            try:
                async with s.post(url + CHAT, json=body) as r:
                    await r.read()
            except TimeoutError:
                pass  # hung up while the samples were in flight
    samples = await _wait_for(url, lambda s: s["cancelled"] >= 8)
    assert samples == {"completed": 0, "failed": 0, "cancelled": 8, "unsent": 0}


async def test_passthrough_stream_counts_its_sample_and_cost(
        start_proxy, sim_config, classifier: TaskClassifier) -> None:
    url = await start_proxy(sim_config(ttft_s=0.0, tpot_s=0.0),
                            service_factory=_service(classifier, 1))
    stream = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json=stream) as r:
            assert r.status == 200 and b"[DONE]" in await r.read()
        async with s.post(url + CHAT, json={**BODY, "stream": True}) as r:  # no usage: no cost
            assert r.status == 200 and b"[DONE]" in await r.read()
    m = await _metrics(url)
    assert _samples(m) == {"completed": 2, "failed": 0, "cancelled": 0, "unsent": 0}
    assert _n_count(m) == 2
    pipeline, upstream = _costs(m)
    assert upstream > 0 and abs(pipeline - upstream) < 1e-12


async def test_passthrough_stream_failed_and_cancelled(start_proxy, sim_config,
                                                       classifier: TaskClassifier) -> None:
    url = await start_proxy(sim_config(ttft_s=0.0, tpot_s=0.0,
                                           rate_limit_rate=1.0),
                            service_factory=_service(classifier, 1))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json={**BODY, "stream": True}) as r:
            assert r.status == 429
    assert _samples(await _metrics(url))["failed"] == 1

    url = await start_proxy(sim_config(ttft_s=0.0, tpot_s=0.05),
                            service_factory=_service(classifier, 1))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + CHAT, json={**BODY, "stream": True, "max_tokens": 200}) as r:
            await r.content.readline()  # the first chunk arrived; now hang up
    samples = await _wait_for(url, lambda s: s["cancelled"] > 0)
    assert samples == {"completed": 0, "failed": 0, "cancelled": 1, "unsent": 0}
