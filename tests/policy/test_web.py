"""Admin endpoints on a small aiohttp app built with setup_policies: auth, reload, listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from proxy.config import Config
from proxy.policy.web import POLICY_STORE, setup_policies
from tests.policy.conftest import policy_text

KEY = "s3cret-admin"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(config: Config, policy_path: Path, registry: CollectorRegistry) -> AsyncIterator[TestClient]:
    policy_path.write_text(policy_text("v1"))
    app = web.Application()
    setup_policies(app, config, registry, watch=False, sighup=False)
    async with TestClient(TestServer(app)) as c:
        yield c


def _ok(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("iapo_policy_reload_total", {"result": "ok"}) or 0.0


def _version(client: TestClient) -> str:
    return client.app[POLICY_STORE].current.select("math", {"accuracy": 1.0}).policy_version  # type: ignore[index]


async def _assert_error(resp, status: int, etype: str) -> None:  # noqa: ANN001
    assert resp.status == status
    body = await resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == etype


async def test_admin_disabled_without_env(client: TestClient, policy_path: Path, registry: CollectorRegistry,
                                          monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    monkeypatch.delenv(config.auth.admin_key_env, raising=False)
    policy_path.write_text(policy_text("v2"))
    await _assert_error(await client.post("/admin/reload", headers={"Authorization": f"Bearer {KEY}"}),
                        403, "permission_error")
    await _assert_error(await client.get("/admin/policies"), 403, "permission_error")
    assert _version(client) == "v1" and _ok(registry) == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                                     {"Authorization": "Basic " + KEY}])
async def test_wrong_admin_key_is_401_and_reloads_nothing(
        client: TestClient, policy_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch,
        config: Config, headers: dict[str, str]) -> None:
    monkeypatch.setenv(config.auth.admin_key_env, KEY)
    policy_path.write_text(policy_text("v2"))
    await _assert_error(await client.post("/admin/reload", headers=headers), 401, "authentication_error")
    await _assert_error(await client.get("/admin/policies", headers=headers), 401, "authentication_error")
    assert _version(client) == "v1" and _ok(registry) == 0


async def test_admin_reload_and_listing(client: TestClient, policy_path: Path, registry: CollectorRegistry,
                                        monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    monkeypatch.setenv(config.auth.admin_key_env, KEY)
    auth = {"Authorization": f"Bearer {KEY}"}
    policy_path.write_text(policy_text("v2"))
    resp = await client.post("/admin/reload", headers=auth)
    assert resp.status == 200
    body = await resp.json()
    assert body["result"] == "ok" and body["trigger"] == "admin"
    assert [(p["id"], p["version"]) for p in body["policies"]] == [("test", "v2")]
    assert body["policies"][0]["tasks"] == ["math", "general"]
    assert _version(client) == "v2" and _ok(registry) == 1
    assert registry.get_sample_value("iapo_policy_info", {"id": "test", "version": "v2"}) == 1.0

    policy_path.write_text(policy_text("v3", valid=False))
    resp = await client.post("/admin/reload", headers=auth)
    await _assert_error(resp, 422, "invalid_request_error")
    body = await resp.json()
    assert "contexts[0].action.n" in body["error"]["message"]
    assert body["reload"]["policies"] == [{"id": "test", "version": "v2"}]  # old set kept
    assert _version(client) == "v2"
    assert registry.get_sample_value("iapo_policy_reload_total", {"result": "error"}) == 1.0

    listing = await (await client.get("/admin/policies", headers=auth)).json()
    assert listing["policies"][0]["version"] == "v2"
    assert listing["policies"][0]["sha256"]
    assert [r["result"] for r in listing["reloads"]] == ["ok", "ok", "error"]


async def test_app_refuses_to_start_with_invalid_policy(config: Config, policy_path: Path) -> None:
    policy_path.write_text(policy_text("v1", valid=False))
    app = web.Application()
    setup_policies(app, config, CollectorRegistry(), watch=False, sighup=False)
    server = TestServer(app)
    with pytest.raises(Exception, match=r"contexts\[0\]\.action\.n"):
        await server.start_server()
    await server.close()
