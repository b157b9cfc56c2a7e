"""Tool calling in the simulator, seen through the official openai SDK and raw HTTP."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest

from proxy.sim.protocol import parse_chat_request
from proxy.sim.server import SimServer
from proxy.sim.tools import choose_tool

WEATHER: dict[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
        "hours": {"type": "array"}, "extra": {"type": "object"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city"]}}}
CLOCK: dict[str, Any] = {"type": "function", "function": {"name": "current_time"}}
ASK = "What is the weather in Paris tomorrow? Please tell me everything."
EXPECTED_ARGS = {"city": ASK[:40], "days": 0, "metric": False, "hours": [], "extra": {}, "unit": None}


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def client(sim: SimServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sim.url, api_key="x", max_retries=0)


async def test_named_tool_choice_forces_the_call(sim: SimServer) -> None:
    async with client(sim) as c:
        resp = await c.chat.completions.create(
            model="m", messages=user(ASK), tools=[CLOCK, WEATHER], n=2,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})
    ids = set()
    for choice in resp.choices:
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        calls = choice.message.tool_calls or []
        assert len(calls) == 1 and calls[0].type == "function"
        assert calls[0].function.name == "get_weather"
        assert json.loads(calls[0].function.arguments) == EXPECTED_ARGS
        assert calls[0].id.startswith("call_") and len(calls[0].id) == 5 + 24
        ids.add(calls[0].id)
    assert len(ids) == 2
    args = json.dumps(EXPECTED_ARGS)
    assert resp.usage is not None and resp.usage.completion_tokens == 2 * len(args.split())


async def test_auto_calls_a_mentioned_tool_else_answers_text(sim: SimServer) -> None:
    async with client(sim) as c:
        called = await c.chat.completions.create(
            model="m", messages=user("Please get weather for Paris."), tools=[CLOCK, WEATHER])
        text = await c.chat.completions.create(model="m", messages=user(ASK), tools=[CLOCK, WEATHER])
        none = await c.chat.completions.create(model="m", messages=user("current_time please"),
                                               tools=[CLOCK], tool_choice="none")
        required = await c.chat.completions.create(model="m", messages=user(ASK),
                                                   tools=[CLOCK, WEATHER], tool_choice="required")
    call = (called.choices[0].message.tool_calls or [None])[0]
    assert call is not None and call.function.name == "get_weather"
    assert called.choices[0].finish_reason == "tool_calls"
    for resp in (text, none):
        assert resp.choices[0].message.tool_calls is None and resp.choices[0].message.content
        assert resp.choices[0].finish_reason == "stop"
    forced = (required.choices[0].message.tool_calls or [None])[0]
    assert forced is not None and forced.function.name == "current_time"  # none named: the first
    assert forced.function.arguments == "{}"


async def test_a_tool_result_is_answered_with_text(sim: SimServer) -> None:
    async with client(sim) as c:
        first = await c.chat.completions.create(
            model="m", messages=user(ASK), tools=[WEATHER], tool_choice="required")
        call = (first.choices[0].message.tool_calls or [None])[0]
        assert call is not None
        resp = await c.chat.completions.create(
            model="m", tools=[WEATHER], tool_choice="required", messages=[
                *user(ASK),
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear", "high": 21}'}])
    assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.content
    assert resp.choices[0].message.tool_calls is None


async def test_streamed_tool_call_accumulates_to_the_same_call(sim: SimServer) -> None:
    forced: Any = {"type": "function", "function": {"name": "get_weather"}}
    async with client(sim) as c:
        whole = await c.chat.completions.create(model="m", messages=user(ASK), tools=[WEATHER],
                                                tool_choice=forced, seed=3)
        stream = await c.chat.completions.create(
            model="m", messages=user(ASK), tools=[WEATHER], tool_choice=forced, seed=3,
            stream=True, stream_options={"include_usage": True})
        name, args, ids, reasons, usage, n_chunks = "", "", set[str](), [], None, 0
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                n_chunks += 1
                reasons.append(choice.finish_reason)
                for tc in choice.delta.tool_calls or []:
                    assert tc.index == 0 and tc.function is not None
                    ids |= {tc.id} if tc.id else set()
                    name += tc.function.name or ""
                    args += tc.function.arguments or ""
    call = (whole.choices[0].message.tool_calls or [None])[0]
    assert call is not None and ids == {call.id}  # seeded: the same id both ways
    assert name == "get_weather" == call.function.name and args == call.function.arguments
    assert json.loads(args) == EXPECTED_ARGS
    assert reasons[-1] == "tool_calls" and set(reasons[:-1]) == {None}
    assert n_chunks == len(args.split()) + 2  # head, one per argument token, finish
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens == len(args.split())


async def test_raw_stream_chunks_have_openai_shapes(sim: SimServer, http: aiohttp.ClientSession) -> None:
    body = {"model": "m", "messages": user("get_weather"), "tools": [WEATHER], "stream": True}
    async with http.post(sim.url + "/chat/completions", json=body) as r:
        raw = (await r.read()).decode()
    events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e.strip()]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0] for e in events[:-1]]
    head = deltas[0]["delta"]
    assert head["role"] == "assistant" and head["content"] is None
    assert head["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert set(head["tool_calls"][0]) == {"index", "id", "type", "function"}
    for d in deltas[1:-1]:
        assert set(d["delta"]) == {"tool_calls"} and set(d["delta"]["tool_calls"][0]) == {"index", "function"}
    assert deltas[-1]["delta"] == {} and deltas[-1]["finish_reason"] == "tool_calls"


async def test_text_answers_with_tools_match_those_without(sim: SimServer,
                                                          http: aiohttp.ClientSession) -> None:
    async def contents(**extra: Any) -> list[str]:
        body = {"model": "m", "messages": user(ASK), "n": 4, "seed": 9, **extra}
        async with http.post(sim.url + "/chat/completions", json=body) as r:
            return [c["message"]["content"] for c in (await r.json())["choices"]]

    assert await contents() == await contents(tools=[WEATHER]) == await contents(
        tools=[WEATHER, CLOCK], tool_choice="none", functions=[{"name": "legacy"}])


@pytest.mark.parametrize("text, called", [
    ("Get Weather for Paris", "get_weather"), ("call get_weather now", "get_weather"),
    ("forget weathering", None), ("what is the current time?", "current_time"),
    ("get weather, or the current time", "current_time"),  # the first tool in the list wins
])
def test_auto_matches_whole_words_of_the_name(text: str, called: str | None) -> None:
    nullable = {"type": "function", "function": {"name": "get_weather", "description": None,
                                                 "parameters": None}}
    req = parse_chat_request({"model": "m", "messages": user(text), "tools": [CLOCK, nullable]})
    tool = choose_tool(req)
    assert (tool.name if tool else None) == called


def fn(**kw: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", **kw}}


@pytest.mark.parametrize("extra, param", [
    ({"tools": {"name": "f"}}, "tools"),
    ({"tools": []}, "tools"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"tools": [WEATHER, {"type": "retrieval"}]}, "tools[1].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
    ({"tools": [fn(name="has space")]}, "tools[0].function.name"),
    ({"tools": [fn(), fn()]}, "tools[1].function.name"),
    ({"tools": [fn(description=3)]}, "tools[0].function.description"),
    ({"tools": [fn(parameters="{}")]}, "tools[0].function.parameters"),
    ({"tools": [fn(parameters={"properties": []})]}, "tools[0].function.parameters"),
    ({"tools": [fn()], "tool_choice": "always"}, "tool_choice"),
    ({"tools": [fn()], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"tools": [fn()], "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tool_choice": "auto"}, "tool_choice"),
])
async def test_malformed_tools_are_400s_naming_the_param(sim: SimServer, extra: dict[str, Any],
                                                         param: str) -> None:
    async with client(sim) as c:
        with pytest.raises(openai.BadRequestError) as info:
            await c.chat.completions.create(model="m", messages=user("hi"), extra_body=extra)
    err = info.value.body
    assert isinstance(err, dict) and err["param"] == param and err["type"] == "invalid_request_error"
