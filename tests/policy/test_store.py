"""PolicyStore: atomic reloads, the watcher's half-written-file rule, metrics, SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from proxy.config import Config
from proxy.policy.load import PolicyError, parse_policy_bytes
from proxy.policy.store import PolicyStore
from tests.policy.conftest import W, policy_text, reload_count, store_version


def _info(registry: CollectorRegistry, version: str, policy_id: str = "test") -> float | None:
    return registry.get_sample_value("iapo_policy_info", {"id": policy_id, "version": version})


def test_initial_load_sets_info_and_counts_no_reload(store: PolicyStore, registry: CollectorRegistry) -> None:
    assert store_version(store) == "v1"
    assert _info(registry, "v1") == 1.0
    assert reload_count(registry, "ok") == 0 and reload_count(registry, "error") == 0


def test_initial_load_of_bad_file_raises(config: Config, policy_path: Path) -> None:
    policy_path.write_text(policy_text("v1", valid=False))
    with pytest.raises(PolicyError, match=r"contexts\[0\]\.action\.n"):
        PolicyStore(config).load_initial()


def test_reload_swaps_and_failed_reload_keeps_old(store: PolicyStore, policy_path: Path,
                                                  registry: CollectorRegistry) -> None:
    in_flight = store.current
    policy_path.write_text(policy_text("v2"))
    result = store.reload()
    assert result.ok and result.policies == (("test", "v2"),)
    assert store_version(store) == "v2"
    assert in_flight.select("math", W).policy_version == "v1"  # a request keeps the set it started with
    assert _info(registry, "v2") == 1.0 and _info(registry, "v1") is None

    policy_path.write_text(policy_text("v3", valid=False))
    result = store.reload()
    assert not result.ok and any("contexts[0].action.n" in p for p in result.problems)
    assert store_version(store) == "v2"
    assert (reload_count(registry, "ok"), reload_count(registry, "error")) == (1, 1)
    assert _info(registry, "v2") == 1.0 and _info(registry, "v3") is None

    policy_path.unlink()
    assert not store.reload().ok and store_version(store) == "v2"
    assert reload_count(registry, "error") == 2
    assert [r.ok for r in store.history] == [True, True, False, False]  # initial, v2, v3, missing


async def test_watcher_waits_for_stable_file_and_ignores_half_written(
        store: PolicyStore, policy_path: Path, registry: CollectorRegistry) -> None:
    full = policy_text("v2")
    half = full[: len(full) // 2]
    policy_path.write_text(half)
    assert await store.poll() is None  # change seen; not parsed until stable
    with policy_path.open("a") as fh:
        fh.write(full[len(half):])
    assert await store.poll() is None  # changed again
    result = await store.poll()  # stable now: load
    assert result is not None and result.ok and store_version(store) == "v2"
    assert (reload_count(registry, "ok"), reload_count(registry, "error")) == (1, 0)

    # an unchanged or merely touched file is not reloaded
    os.utime(policy_path)
    for _ in range(3):
        assert await store.poll() is None
    assert reload_count(registry, "ok") == 1

    # a file that stays broken is counted once, then retried on the next change
    policy_path.write_text(half)
    assert await store.poll() is None
    result = await store.poll()
    assert result is not None and not result.ok and store_version(store) == "v2"
    for _ in range(3):
        assert await store.poll() is None
    assert reload_count(registry, "error") == 1
    policy_path.write_text(policy_text("v3"))
    await store.poll()
    assert (await store.poll()).ok and store_version(store) == "v3"  # type: ignore[union-attr]
    assert (reload_count(registry, "ok"), reload_count(registry, "error")) == (2, 1)


async def test_valid_but_truncated_file_is_not_loaded_while_being_written(
        store: PolicyStore, policy_path: Path, config: Config) -> None:
    """A prefix that happens to be a valid policy (fewer contexts) must not be served mid-write."""
    full = policy_text("v2")
    cut = full.index("- task: general")
    assert len(parse_policy_bytes(full[:cut].encode(), config, policy_path).contexts) == 1  # valid prefix
    policy_path.write_text(full[:cut])
    assert await store.poll() is None
    with policy_path.open("a") as fh:
        fh.write(full[cut:])
    assert await store.poll() is None
    await store.poll()
    assert len(store.current.policies[0].contexts) == 2


async def test_background_watcher_picks_up_change(store: PolicyStore, policy_path: Path) -> None:
    store.start_watching()
    try:
        policy_path.write_text(policy_text("v2"))
        for _ in range(200):
            if store_version(store) == "v2":
                break
            await asyncio.sleep(0.01)
        assert store_version(store) == "v2"
    finally:
        await store.stop()


async def test_sighup_reloads(store: PolicyStore, policy_path: Path, registry: CollectorRegistry) -> None:
    assert store.install_sighup()
    try:
        policy_path.write_text(policy_text("v2"))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if store_version(store) == "v2":
                break
            await asyncio.sleep(0.01)
        assert store_version(store) == "v2"
        assert store.history[-1].trigger == "sighup"
        assert reload_count(registry, "ok") == 1
    finally:
        await store.stop()
