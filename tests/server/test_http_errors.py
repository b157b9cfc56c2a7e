"""Bad input and HTTP-level errors: each a 4xx OpenAI error body, the server healthy after."""

from __future__ import annotations

import asyncio
import io
import json
import re
from dataclasses import replace

import aiohttp
import pytest

from proxy.config import ApiKeyConfig, AuthConfig
from proxy.server.state import METRICS

MSG = [{"role": "user", "content": "hi"}]


async def _post(url: str, data: bytes | str | io.BytesIO, headers: dict[str, str] | None = None):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/v1/chat/completions", data=data,
                          headers={"content-type": "application/json", **(headers or {})}) as r:
            return r.status, r.headers, await r.json(content_type=None)


async def _healthy(url: str) -> bool:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/health") as r:
            return r.status == 200 and (await r.json())["status"] == "ok"


def _assert_openai_error(body: dict, type_: str = "invalid_request_error") -> dict:
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == type_ and isinstance(err["message"], str) and err["message"]
    return err


@pytest.mark.parametrize(("payload", "status", "param"), [
    ("{not json", 400, None),
    ('["a list"]', 400, None),
    ({"model": "sim-1"}, 400, "messages"),
    ({"messages": MSG}, 400, "model"),
    ({"model": "sim-1", "messages": "hello"}, 400, "messages"),
    ({"model": "sim-1", "messages": []}, 400, "messages"),
    ({"model": "sim-1", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
    ({"model": "sim-1", "messages": [{"role": ["user"], "content": "x"}]}, 400, "messages[0].role"),
    ({"model": "sim-1", "messages": [{"role": {"a": 1}, "content": "x"}]}, 400, "messages[0].role"),
    ({"model": "sim-1", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({"model": "sim-1", "messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}]},
     400, "messages[0].content[0].text"),
    ({"model": "sim-1", "messages": MSG, "temperature": "hot"}, 400, "temperature"),
    ({"model": "sim-1", "messages": MSG, "temperature": 3}, 400, "temperature"),
    ({"model": "sim-1", "messages": MSG, "top_p": 1.5}, 400, "top_p"),
    ({"model": "sim-1", "messages": MSG, "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "sim-1", "messages": MSG, "max_tokens": 1 << 63}, 400, "max_tokens"),
    ({"model": "sim-1", "messages": MSG, "max_completion_tokens": 1 << 31}, 400,
     "max_completion_tokens"),
    ({"model": "sim-1", "messages": MSG, "stop": [""]}, 400, "stop"),
    ({"model": "sim-1", "messages": MSG, "stream": "yes"}, 400, "stream"),
    ({"model": "sim-1", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"model": "sim-1", "messages": MSG, "n": 17}, 400, "n"),
    ({"model": "sim-1", "messages": MSG, "n": 1.5}, 400, "n"),
    ({"model": "sim-1", "messages": MSG, "seed": True}, 400, "seed"),
    ({"model": "sim-1", "messages": MSG, "iapo": "fast"}, 400, "iapo"),
    ({"model": "gpt-17", "messages": MSG}, 404, "model"),
])
async def test_bad_input_is_4xx_openai_error(proxy_url: str, payload, status: int, param) -> None:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    got, headers, body = await _post(proxy_url, data)
    assert got == status, body
    err = _assert_openai_error(body)
    assert err["param"] == param
    if status == 404:
        assert err["code"] == "model_not_found"
    assert headers["content-type"].startswith("application/json")
    assert await _healthy(proxy_url)


async def test_body_over_limit_is_413(start_proxy, repo_config) -> None:
    config = replace(repo_config, server=replace(repo_config.server, max_body_bytes=4096))
    url = await start_proxy(config)
    big = json.dumps({"model": "sim-1", "messages": [{"role": "user", "content": "x" * 8000}]})
    status, _, body = await _post(url, big)
    assert status == 413
    assert _assert_openai_error(body)["code"] == "request_too_large"
    assert await _healthy(url)
    small = json.dumps({"model": "sim-1", "messages": MSG})
    assert (await _post(url, small))[0] == 200


async def test_unknown_route_and_wrong_method_use_openai_body(proxy_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{proxy_url}/v1/nothing") as r:
            assert r.status == 404
            _assert_openai_error(await r.json())
        async with s.get(f"{proxy_url}/v1/chat/completions") as r:
            assert r.status == 405
            _assert_openai_error(await r.json())


async def test_request_id_echoed_or_generated(proxy_url: str) -> None:
    ok = json.dumps({"model": "sim-1", "messages": MSG})
    _, headers, _ = await _post(proxy_url, ok, {"x-request-id": "req-abc.123"})
    assert headers["x-request-id"] == "req-abc.123"
    _, headers, _ = await _post(proxy_url, "{bad", {"x-request-id": "evil\tid with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{proxy_url}/v1/models", headers={"x-request-id": "m-1"}) as r:
            assert r.headers["x-request-id"] == "m-1"


async def test_upstream_faults_through_the_proxy(start_proxy, sim_config) -> None:
    ok = json.dumps({"model": "sim-1", "messages": MSG})
    url = await start_proxy(sim_config(error_rate=1.0))
    status, headers, body = await _post(url, ok)
    assert status == 502 and _assert_openai_error(body, "upstream_error")
    url = await start_proxy(sim_config(malformed_rate=1.0))
    assert (await _post(url, ok))[0] == 502
    url = await start_proxy(sim_config(drop_rate=1.0))
    assert (await _post(url, ok))[0] == 502
    url = await start_proxy(sim_config(rate_limit_rate=1.0))
    status, headers, body = await _post(url, ok)
    assert status == 429 and headers["retry-after"] == "1"
    assert _assert_openai_error(body, "rate_limit_error")
    assert await _healthy(url)


async def test_unexpected_exception_is_500_without_traceback(start_proxy, caplog) -> None:
    class Broken:
        async def complete(self, req, ctx):
            raise RuntimeError("secret internals")

        def stream(self, req, ctx):
            raise RuntimeError("secret internals")

    url = await start_proxy(service_factory=lambda app: Broken())
    status, headers, body = await _post(url, json.dumps({"model": "sim-1", "messages": MSG}))
    assert status == 500
    err = _assert_openai_error(body, "server_error")
    assert "secret" not in err["message"] and "Traceback" not in err["message"]
    assert headers["x-request-id"] in caplog.text
    assert await _healthy(url)


@pytest.mark.parametrize(("field", "depth"), [('"iapo": {"task": ', 1000),
                                              ('"iapo": {"profile": ', 150),
                                              ('"metadata": {"m": ', 300)])
async def test_deeply_nested_body_is_400(proxy_url: str, field: str, depth: int) -> None:
    # written out: the standard library cannot encode what a client can send
    data = ('{"model": "sim-1", "messages": [{"role": "user", "content": "hi"}], '
            + field + "[" * depth + "1" + "]" * depth + "}}")
    status, _, body = await _post(proxy_url, data)
    assert status == 400, body
    assert "deep" in _assert_openai_error(body)["message"]
    assert await _healthy(proxy_url)


async def test_error_message_does_not_echo_a_huge_value(proxy_url: str) -> None:
    for hints in ({"profile": "p" * 1_000_000}, {"task": "t" * 1_000_000},
                  {"weights": {"w" * 1_000_000: 1}},
                  {"weights": {f"objective-{i}": 1 for i in range(50_000)}}):
        data = json.dumps({"model": "sim-1", "messages": MSG, "iapo": hints}).encode()
        status, _, body = await _post(proxy_url, io.BytesIO(data))
        assert status == 400 and len(_assert_openai_error(body)["message"]) < 1000


async def _raw(url: str, head: bytes, body: bytes = b"", *, wait: float = 5.0) -> bytes:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a raw
    connection; the response bytes (until the server closes or ``wait`` passes)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
    try:
        return await asyncio.wait_for(reader.read(1 << 20), wait)
    finally:
        writer.close()


def _status_and_error(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), _assert_openai_error(json.loads(body), "invalid_request_error") \
        if not head.split()[1].startswith(b"401") else json.loads(body)["error"]


async def test_undecodable_content_encoding_is_400(proxy_url: str) -> None:
    body = json.dumps({"model": "sim-1", "messages": MSG}).encode()
    status, err = _status_and_error(await _raw(
        proxy_url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        b"\r\nContent-Encoding: gzip\r\nContent-Length: %d" % len(body), body))
    assert status == 400 and "could not be read" in err["message"]
    assert await _healthy(proxy_url)


async def test_slow_body_is_408(start_proxy, sim_config) -> None:
    config = sim_config(ttft_s=0.0, tpot_s=0.0)
    url = await start_proxy(replace(config, server=replace(config.server, request_timeout_s=0.3)))
    response = await _raw(url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 100", b'{"model"')
    status, err = _status_and_error(response)
    assert status == 408 and err["code"] == "request_timeout"
    assert await _healthy(url)


async def test_non_utf8_bearer_key_is_401(start_proxy, repo_config, monkeypatch) -> None:
    monkeypatch.setenv("TEST_IAPO_KEY", "sk-good")
    monkeypatch.setenv(repo_config.auth.admin_key_env, "sk-admin")
    url = await start_proxy(replace(repo_config, auth=AuthConfig(
        require_api_key=True, keys=(ApiKeyConfig("TEST_IAPO_KEY"),),
        admin_key_env=repo_config.auth.admin_key_env)))
    for line in (b"POST /v1/chat/completions", b"POST /admin/reload", b"GET /admin/policies"):
        status, err = _status_and_error(await _raw(
            url, line + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Content-Length: 2", b"{}"))
        assert status == 401 and err["type"] == "authentication_error", line
    assert await _healthy(url)


async def test_body_between_the_simulator_default_and_our_limit_is_answered(proxy_url: str) -> None:
    # aiohttp's default body limit is 1 MiB; the embedded simulator must take what we let through
    big = json.dumps({"model": "sim-1", "messages": [{"role": "user", "content": "x " * 700_000}]})
    status, _, body = await _post(proxy_url, io.BytesIO(big.encode()))
    assert status == 200, body


async def test_disconnects_are_counted(start_proxy) -> None:
    url = await start_proxy(ttft_s=5.0)
    metrics = start_proxy.apps[-1][METRICS]
    async with aiohttp.ClientSession() as s:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await s.post(f"{url}/v1/chat/completions", json={"model": "sim-1", "messages": MSG})
    for _ in range(50):  # the server notices the closed connection on its next loop turns
        await asyncio.sleep(0.02)
        if metrics.registry.get_sample_value("iapo_requests_total",
                                             {"model": "sim-1", "status": "499"}):
            break
    assert metrics.registry.get_sample_value("iapo_requests_total",
                                             {"model": "sim-1", "status": "499"}) == 1
    assert metrics.registry.get_sample_value("iapo_upstream_calls_total",
                                             {"model": "sim-1", "outcome": "cancelled"}) >= 1
