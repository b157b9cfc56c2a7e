"""Acceptance: hot reload under load, on the real proxy.

16 clients keep chat completions going through the proxy app (policy store + pipeline + the
embedded simulated upstream, all over HTTP) while the policy file is rewritten 50 times (valid and
invalid versions alternating; some valid ones written in two halves with a pause): no request
fails, every response's ``iapo.policy.version`` was valid and being served when the request
started, invalid versions are never served, and the reload counters match the versions written.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path

import aiohttp

from proxy.config import Config
from proxy.policy.web import POLICY_STORE
from proxy.server.state import METRICS
from tests.conftest import with_simulator
from tests.policy.conftest import policy_text

CLIENTS = 16
VERSIONS = 50
SLACK_S = 0.05  # clock slack when matching a response to the serving window of its version
QUESTION = {"model": "sim-1", "messages": [{"role": "user", "content": "What is 17 + 25?"}],
            "iapo": {"task": "math"}}


async def _wait(cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "watcher did not react in time"
        await asyncio.sleep(0.005)


async def test_reload_under_load(config: Config, policy_path: Path, start_proxy) -> None:
    policy_path.write_text(policy_text("v000"))
    url = await start_proxy(with_simulator(config, ttft_s=0.0, tpot_s=0.0))
    app = start_proxy.apps[-1]
    registry = app[METRICS].registry
    counts = lambda r: registry.get_sample_value("iapo_policy_reload_total", {"result": r}) or 0.0  # noqa: E731
    responses: list[tuple[float, float, str]] = []
    failures: list[str] = []
    done = asyncio.Event()
    store = app[POLICY_STORE]
    store.history = deque(store.history, maxlen=4 * VERSIONS)  # keep every swap for the windows

    async with aiohttp.ClientSession() as client:

        async def worker() -> None:
            while not done.is_set():
                start = time.time()
                try:
                    async with client.post(f"{url}/v1/chat/completions", json=QUESTION) as resp:
                        body = await resp.json()
                    if resp.status != 200:
                        failures.append(f"status {resp.status}: {body}")
                        continue
                    policy = body["iapo"]["policy"]
                    assert resp.headers["x-iapo-policy"] == f"test@{policy['version']}"
                    responses.append((start, time.time(), policy["version"]))
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
