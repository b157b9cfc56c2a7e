"""The pipeline behind the real proxy app, with the openai SDK as client and the embedded
simulator as upstream (over HTTP)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import aiohttp
import openai
import pytest
from aiohttp import web

from proxy.actions import Selection
from proxy.config import Action, ApiKeyConfig, AuthConfig, Config
from proxy.pipeline.classify import TaskClassifier
from proxy.pipeline.extract import extract_number
from proxy.pipeline.service import PipelineService
from proxy.policy.store import PolicyStore
from proxy.server.state import CONFIG, SIM, UPSTREAM

ROOT = Path(__file__).resolve().parents[2]


class Fixed:
    def __init__(self, prompt: str, n: int) -> None:
        self.action = Action(prompt=prompt, n=n, aggregator="majority")

    def select(self, task: str, weights: Mapping[str, float],
               max_n: int | None = None) -> Selection:
        return Selection(self.action, "fixed", "1", "fixed")


def _factory(classifier: TaskClassifier, actions=None):
    def make(app: web.Application) -> PipelineService:
        config: Config = app[CONFIG]
        source = actions
        if source is None:
            source = PolicyStore(config)
            source.load_initial()
        return PipelineService(config, app[UPSTREAM], source, classifier=classifier)
    return make


def _math(k: int) -> list[dict]:
    rows = [json.loads(x) for x in (ROOT / "proxy/data/tasks/math.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "test"][:k]


async def _sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


async def test_sdk_gets_policy_action_iapo_object_and_headers(start_proxy, classifier) -> None:
    url = await start_proxy(service_factory=_factory(classifier))
    item = _math(1)[0]
    async with await _sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="sim-1", messages=[{"role": "user", "content": item["input"]}],
            extra_body={"iapo": {"profile": "quality"}})
        resp = raw.parse()
    iapo = resp.model_extra["iapo"]
    assert iapo["task"] == "math" and iapo["weights_source"] == "profile:quality"
    assert iapo["action"]["aggregator"] == "majority" and iapo["action"]["n"] > 1
    assert iapo["policy"]["id"] != "config" and iapo["votes"]
    assert raw.headers["x-iapo-task"] == "math"
    assert raw.headers["x-iapo-action"].endswith(f"n={iapo['action']['n']};majority")
    assert resp.usage.completion_tokens > 0 and iapo["cost_usd"] > 0


async def test_sdk_invalid_weights_is_400(start_proxy, classifier) -> None:
    url = await start_proxy(service_factory=_factory(classifier, Fixed("cot", 3)))
    async with await _sdk(url) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(
                model="sim-1", messages=[{"role": "user", "content": "hi"}],
                extra_body={"iapo": {"weights": {"accuracy": 1, "speed": 2}}})
    assert err.value.status_code == 400 and "unknown objective" in str(err.value)


async def test_sdk_majority_of_9_beats_one_sample(start_proxy, classifier) -> None:
    items = _math(100)
    accs = []
    for n in (1, 9):
        url = await start_proxy(service_factory=_factory(classifier, Fixed("cot", n)))
        async with await _sdk(url) as client:
            sem = asyncio.Semaphore(16)

            async def one(item: dict) -> tuple[bool, dict]:
                async with sem:
                    r = await client.chat.completions.create(
                        model="sim-1", messages=[{"role": "user", "content": item["input"]}])
                return extract_number(r.choices[0].message.content or "") == item["answer"], \
                    r.model_extra["iapo"]

            out = await asyncio.gather(*(one(i) for i in items))
        accs.append(sum(ok for ok, _ in out) / len(items))
        assert all(rep["action"]["n"] == n for _, rep in out)
    assert len(items) >= 100 and accs[1] >= accs[0] + 0.10, accs


async def test_client_disconnect_cancels_upstream_samples(start_proxy, classifier) -> None:
    url = await start_proxy(service_factory=_factory(classifier, Fixed("cot", 6)), ttft_s=10.0)
    sim = start_proxy.apps[-1][SIM]
    body = {"model": "sim-1", "messages": [{"role": "user", "content": _math(1)[0]["input"]}]}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(url + "/v1/chat/completions", json=body,
                                 timeout=aiohttp.ClientTimeout(total=0.5)):
                pass
    for _ in range(300):
        if sim.stats.cancelled >= 6:
            break
        await asyncio.sleep(0.01)
    assert sim.stats.cancelled == 6 and sim.stats.completed == 0 and sim.stats.in_flight == 0


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
FORCED = {"type": "function", "function": {"name": "get_weather"}}


async def test_a_tool_call_is_one_sample_returned_as_the_upstream_sent_it(start_proxy,
                                                                        classifier) -> None:
    url = await start_proxy(service_factory=_factory(classifier, Fixed("cot", 5)))
    sim = start_proxy.apps[-1][SIM]
    messages = [{"role": "user", "content": _math(1)[0]["input"]}]
    async with await _sdk(url) as client:
        resp = await client.chat.completions.create(model="sim-1", messages=messages,
                                                    tools=[WEATHER], tool_choice=FORCED)
        assert sim.stats.requests == 1  # not the policy's five samples
        call = resp.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather" and resp.choices[0].finish_reason == "tool_calls"
        assert set(json.loads(call.function.arguments)) == {"city"}
        iapo = resp.model_extra["iapo"]
        assert (iapo["action"]["prompt"], iapo["action"]["n"], iapo["policy"]["rule"]) == (
            "plain", 1, "tools")

        for n in (1, 2):  # n=1: the upstream's stream; n=2: the proxy's chunks of each choice
            stream = await client.chat.completions.create(
                model="sim-1", messages=messages, tools=[WEATHER], tool_choice=FORCED, n=n,
                stream=True)
            names, args = [""] * n, [""] * n
            async for part in stream:
                for choice in part.choices:
                    assert choice.delta.content is None  # a tool call has no content, not ""
                    for delta in choice.delta.tool_calls or []:
                        names[choice.index] += delta.function.name or ""
                        args[choice.index] += delta.function.arguments or ""
            assert names == ["get_weather"] * n, n
            assert all(set(json.loads(a)) == {"city"} for a in args), args

        # tools the model must not call: the policy's action, as for any question
        resp = await client.chat.completions.create(model="sim-1", messages=messages,
                                                    tools=[WEATHER], tool_choice="none")
        assert resp.model_extra["iapo"]["action"]["n"] == 5 and not resp.choices[0].message.tool_calls


async def test_structured_output_is_one_sample_as_sent(start_proxy, classifier) -> None:
    url = await start_proxy(service_factory=_factory(classifier, Fixed("cot", 5)))
    sim = start_proxy.apps[-1][SIM]
    async with await _sdk(url) as client:
        resp = await client.chat.completions.create(
            model="sim-1", messages=[{"role": "user", "content": _math(1)[0]["input"]}],
            response_format={"type": "json_object"})
    iapo = resp.model_extra["iapo"]
    assert (iapo["action"]["prompt"], iapo["action"]["n"], iapo["policy"]["rule"]) == (
        "plain", 1, "response_format")
    assert sim.stats.requests == 1


async def test_seeded_choices_differ_and_repeat(start_proxy, classifier) -> None:
    url = await start_proxy(service_factory=_factory(classifier, Fixed("plain", 1)))
    messages = [{"role": "user", "content": _math(1)[0]["input"]}]
    async with await _sdk(url) as client:
        runs = [[c.message.content for c in (await client.chat.completions.create(
            model="sim-1", messages=messages, n=3, seed=7, temperature=1.0)).choices]
            for _ in range(2)]
    assert runs[0] == runs[1]  # reproducible
    assert len(set(runs[0])) == 3  # but each choice its own sample, as with OpenAI


async def test_an_api_keys_max_samples_bounds_the_samples_of_its_requests(
        start_proxy, sim_config, classifier, monkeypatch) -> None:
    monkeypatch.setenv("TEST_KEY_OPEN", "sk-open")
    monkeypatch.setenv("TEST_KEY_CAPPED", "sk-capped")
    keys = (ApiKeyConfig("TEST_KEY_OPEN"), ApiKeyConfig("TEST_KEY_CAPPED", max_samples=4))
    config = replace(sim_config(ttft_s=0, tpot_s=0),
                     auth=AuthConfig(require_api_key=True, keys=keys))
    url = await start_proxy(config, service_factory=_factory(classifier, Fixed("cot", 9)))
    messages = [{"role": "user", "content": _math(1)[0]["input"]}]

    async def samples(key: str, n: int) -> tuple[int, str]:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="sim-1", messages=messages, n=n)
        return raw.parse().model_extra["iapo"]["samples"]["requested"], raw.headers["x-iapo-action"]

    assert await samples("sk-open", 1) == (9, "cot;n=9;majority")
    assert await samples("sk-capped", 1) == (4, "cot;n=4;majority")
    assert await samples("sk-capped", 2) == (4, "cot;n=2;majority")  # 2 choices of 2
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-capped", max_retries=0) as c:
        with pytest.raises(openai.BadRequestError) as err:
            await c.chat.completions.create(model="sim-1", messages=messages, n=5)
    assert err.value.param == "n" and "max_samples (4)" in err.value.message


async def test_a_capped_key_gets_the_policys_best_action_within_its_bound(
        start_proxy, sim_config, classifier, monkeypatch) -> None:
    """Not the policy's action cut to the bound: its best stored arm that fits (here the
    shipped policy's balanced math context, whose action draws more than 10 samples)."""
    from proxy.policy.load import load_policy

    monkeypatch.setenv("TEST_KEY_CAPPED", "sk-capped")
    config = replace(sim_config(ttft_s=0, tpot_s=0), auth=AuthConfig(
        require_api_key=True, keys=(ApiKeyConfig("TEST_KEY_CAPPED", max_samples=10),)))
    policy = load_policy(ROOT / "policies" / "default.yaml", config)
    context = next(c for c in policy.contexts_for("math") if c.profile == config.default_profile)
    fits = [e for e in context.estimates if e.n <= 10]
    assert context.action.n > 10 and fits  # what this test is about
    best = max(fits, key=lambda e: e.utility(context.weights))
    url = await start_proxy(config, service_factory=_factory(classifier))
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-capped", max_retries=0) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="sim-1", messages=[{"role": "user", "content": _math(1)[0]["input"]}])
    iapo = raw.parse().model_extra["iapo"]
    assert raw.headers["x-iapo-action"] == f"{best.prompt};n={best.n};majority"
    assert iapo["policy"]["rule"] == f"profile:{context.profile} (n<=10)"
    assert iapo["samples"]["requested"] == best.n
