"""Acceptance: hot reload under load.

16 clients keep requests going against an aiohttp app while the policy file is rewritten 50 times
(valid and invalid versions alternating; some valid ones written in two halves with a pause):
no request fails, every response names a version that was valid and being served when the request
started, invalid versions are never served, and the reload counters match the versions written.

TODO(lead): the app here is a stand-in that calls ``store.current.select`` per request; move this
onto the real proxy (``create_app`` + simulated upstream) once the pipeline is integrated.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from proxy.config import Config
from proxy.policy.web import POLICY_STORE, setup_policies
from tests.policy.conftest import policy_text

CLIENTS = 16
VERSIONS = 50
SLACK_S = 0.05  # clock slack when matching a response to the serving window of its version


async def _answer(request: web.Request) -> web.Response:
    policies = request.app[POLICY_STORE].current  # once per request: kept until the end
    first = policies.select("math", {"accuracy": 1.0, "cost": 0.1})
    await asyncio.sleep(0.002)  # work in flight while reloads happen
    again = policies.select("general", {"helpfulness": 1.0})
    assert again.policy_version == first.policy_version
    return web.json_response({"version": first.policy_version})


async def _wait(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "watcher did not react in time"
        await asyncio.sleep(0.005)


async def test_reload_under_load(config: Config, policy_path: Path) -> None:
    registry = CollectorRegistry()
    policy_path.write_text(policy_text("v000"))
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _answer)
    setup_policies(app, config, registry, sighup=False, history_size=4 * VERSIONS)
    counts = lambda r: registry.get_sample_value("iapo_policy_reload_total", {"result": r}) or 0.0  # noqa: E731
    responses: list[tuple[float, float, str]] = []
    failures: list[str] = []
    done = asyncio.Event()

    async with TestClient(TestServer(app)) as client:
        store = client.app[POLICY_STORE]  # type: ignore[index]

        async def worker() -> None:
            while not done.is_set():
                start = time.time()
                try:
                    resp = await client.post("/v1/chat/completions", json={})
                    body = await resp.json()
                    if resp.status != 200:
                        failures.append(f"status {resp.status}: {body}")
                        continue
                    responses.append((start, time.time(), body["version"]))
                except Exception as exc:  # noqa: BLE001 - any failure counts
                    failures.append(repr(exc))

        workers = [asyncio.create_task(worker()) for _ in range(CLIENTS)]
        valid, invalid = {"v000"}, set()
        for i in range(1, VERSIONS + 1):
            version = f"v{i:03d}"
            good = i % 2 == 0
            text = policy_text(version, valid=good)
            errors_before = counts("error")
            if good and i % 4 == 0:  # two halves, cut mid-line, with a pause between
                cut = len(text) // 2
                policy_path.write_text(text[:cut])
                await asyncio.sleep(0.01)
                with policy_path.open("a") as fh:
                    fh.write(text[cut:])
            else:
                policy_path.write_text(text)
            if good:
                valid.add(version)
                await _wait(lambda: store.current.policies[0].version == version)
            else:
                invalid.add(version)
                await _wait(lambda: counts("error") > errors_before)
        await asyncio.sleep(0.05)
        done.set()
        await asyncio.gather(*workers)
        history = [r for r in store.history]

    assert not failures, failures[:5]
    assert len(responses) > 500
    served = {v for _, _, v in responses}
    assert served <= valid and not served & invalid
    assert len(served) > VERSIONS // 4  # requests really overlapped many reloads
    assert counts("ok") == VERSIONS // 2 and counts("error") == VERSIONS // 2
    assert registry.get_sample_value("iapo_policy_info", {"id": "test", "version": f"v{VERSIONS:03d}"}) == 1.0
    assert registry.get_sample_value("iapo_policy_info", {"id": "test", "version": "v000"}) is None

    # each response's version was the one being served when its request started
    swaps = [(r.at, r.policies[0][1]) for r in history if r.ok]
    windows = {v: (at, swaps[k + 1][0] if k + 1 < len(swaps) else float("inf"))
               for k, (at, v) in enumerate(swaps)}
    for start, end, version in responses:
        begin, until = windows[version]
        assert begin <= end + SLACK_S and until >= start - SLACK_S, (start, end, version, windows[version])
