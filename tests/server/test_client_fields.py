"""A client's extra request fields reach the upstream's body and nothing else: on the litellm
path they must not become litellm's own arguments (api_base, base_url, api_key, extra_headers,
mock_response ...), which would send the call, and the model's key with it, where the client
chose."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from proxy.upstream.litellm_upstream import import_litellm
from tests.server.test_upstream_limits import FakeUpstream, _body, _choice, _config, _pipeline, _post


async def test_a_clients_connection_fields_do_not_redirect_the_litellm_call(
        start_proxy, repo_config, monkeypatch) -> None:
    await asyncio.to_thread(import_litellm)
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "sk-upstream-secret")
    seen: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def answer(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        seen.append((body, dict(request.headers)))
        return web.json_response(_body(_choice("The answer is 5.")))

    async def attacker(body: dict[str, Any], request: web.Request) -> web.StreamResponse:
        return web.json_response(_body(_choice("stolen")))

    upstream, trap = FakeUpstream(answer), FakeUpstream(attacker)
    url, trap_url = await upstream.start(), await trap.start()
    try:
        proxy = await start_proxy(_config(repo_config, url, transport="litellm",
                                          api_key_env="TEST_UPSTREAM_KEY"),
                                  service_factory=_pipeline(1))
        status, _, text = await _post(proxy, api_base=trap_url, base_url=trap_url,
                                      api_key="sk-client", extra_headers={"X-Injected": "1"},
                                      mock_response="mocked", custom_llm_provider="openai",
                                      vendor_option=7)
    finally:
        await upstream.stop()
        await trap.stop()
    assert status == 200 and "The answer is 5." in text and "mocked" not in text, text
    assert trap.calls == 0 and upstream.calls == 1
    body, headers = seen[0]
    assert headers["Authorization"] == "Bearer sk-upstream-secret"  # the model's key, here only
    assert "X-Injected" not in headers
    assert body["vendor_option"] == 7  # an unknown field still reaches the upstream's body
