"""Oddly shaped upstream answers through the real proxy app over HTTP: a malformed choice or
chunk is one failed sample (or an SSE error event), never a 500; list-of-parts content is text."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.server.test_upstream_limits import (
    CHAT,
    MSG,
    FakeUpstream,
    _body,
    _choice,
    _config,
    _pipeline,
    _post,
)

PARTS = [{"type": "text", "text": "The answer "}, {"type": "image_url", "image_url": {"url": "x"}},
         {"type": "text", "text": "is 5."}]
# sample i (its seed) gets SHAPES[i % len(SHAPES)]: (choice, whether it is a sample that succeeds)
SHAPES: list[tuple[Any, bool]] = [
    (_choice("The answer is 5."), True),
    (5, False),                                                           # not an object
    ({"index": 0, "message": "The answer is 5.", "finish_reason": "stop"}, False),
    (_choice(5), False),                                                  # content an int
    (_choice(PARTS), True),                                               # content parts
    (_choice([1, 2]), False),                                             # parts not objects
    ({**_choice("The answer is 5."), "finish_reason": 7}, True),
    ({"index": 0, "message": {"role": "assistant", "content": "x", "tool_calls": "call"}}, False),
    ({"index": 0, "message": None, "finish_reason": "stop"}, True),       # no text, no vote
]


async def _shaped(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
    seed, k = body.get("seed", 0), body.get("n", 1)
    return web.json_response(_body(*(SHAPES[(seed + j) % len(SHAPES)][0] for j in range(k))))


@pytest.mark.parametrize("supports_n", [False, True])  # one call per sample, or one n=9 call
async def test_malformed_choices_fail_only_their_samples(start_proxy, repo_config,
                                                         supports_n: bool) -> None:
    fake = FakeUpstream(_shaped)
    url = await fake.start()
    try:
        proxy = await start_proxy(_config(repo_config, url, supports_n=supports_n),
                                  service_factory=_pipeline(len(SHAPES)))
        status, _, text = await _post(proxy, seed=0)
    finally:
        await fake.stop()
    assert status == 200, text
    body = json.loads(text)
    good = sum(ok for _, ok in SHAPES)
    assert body["iapo"]["samples"]["completed"] == good
    assert body["iapo"]["samples"]["failed"] == len(SHAPES) - good
    assert body["iapo"]["votes"] == {"5": 3}
    assert body["choices"][0]["message"]["content"] == "The answer is 5."
    assert body["choices"][0]["finish_reason"] == "stop"


async def test_content_parts_are_joined_into_the_answer_text(start_proxy, repo_config) -> None:
    fake = FakeUpstream(_shaped)
    url = await fake.start()
    try:
        proxy = await start_proxy(_config(repo_config, url), service_factory=_pipeline(1))
        status, _, text = await _post(proxy, seed=4)  # SHAPES[4]: content parts
    finally:
        await fake.stop()
    assert status == 200, text
    body = json.loads(text)
    assert body["choices"][0]["message"]["content"] == "The answer is 5."
    assert body["iapo"]["votes"] == {"5": 1}


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 7])
async def test_a_request_whose_only_sample_is_malformed_is_502(start_proxy, repo_config,
                                                               seed: int) -> None:
    fake = FakeUpstream(_shaped)
    url = await fake.start()
    try:
        proxy = await start_proxy(_config(repo_config, url), service_factory=_pipeline(1))
        status, _, text = await _post(proxy, seed=seed)
    finally:
        await fake.stop()
    assert status == 502, text
    error = json.loads(text)["error"]
    assert error["type"] == "upstream_error" and "malformed choice" in error["message"]


async def test_a_malformed_chunk_mid_stream_is_an_sse_error_event(start_proxy, repo_config) -> None:
    good = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "f",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                         "finish_reason": None}]}

    async def sse(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in (json.dumps(good), "[1, 2]", json.dumps(good), "[DONE]"):
            await resp.write(f"data: {event}\n\n".encode())
        return resp

    fake = FakeUpstream(sse)
    url = await fake.start()
    try:
        proxy = await start_proxy(_config(repo_config, url), service_factory=_pipeline(1))
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy + CHAT, json={"model": "sim-1", "messages": MSG,
                                                  "stream": True}) as r:
                status, text = r.status, await r.text()
    finally:
        await fake.stop()
    assert status == 200
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "Hi"
    error = json.loads(events[1])["error"]
    assert error["type"] == "upstream_error" and "malformed chunk" in error["message"]
    assert len(events) == 2
