"""Hostile policy files (recursive aliases, deep nesting, alias bombs, bad bytes, syntax errors):
one clear line from the loader and the CLI; a failed reload everywhere else (watcher, SIGHUP,
``POST /admin/reload``), counted and logged once, the old policy kept."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from proxy.config import Config
from proxy.policy import store as store_module
from proxy.policy.load import PolicyError, load_policy
from proxy.policy.store import PolicyStore
from proxy.policy.web import setup_policies
from tests.policy.conftest import base_policy, policy_text, reload_count, store_version
from tests.policy.test_validate import _cli

_PARAMS = "  params:\n    rounds: 5\n    reuse: subsets\n"


def _with_params(text: str) -> str:
    """The valid test policy with its ``provenance.params`` block replaced by ``text``."""
    doc = yaml.safe_dump(base_policy("v2"), sort_keys=False)
    assert _PARAMS in doc
    return doc.replace(_PARAMS, text)


def _bomb() -> str:
    lines = ["    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    return "  params:\n" + "\n".join(lines) + "\n"


SELF_ALIAS = _with_params("  params: &a {self: *a}\n")
HOSTILE: list[tuple[str, bytes, str]] = [
    ("recursive alias", SELF_ALIAS.encode(), "provenance.params.self: refers to itself (a recursive YAML alias)"),
    ("recursive list", _with_params("  params: {x: &l [1, *l]}\n").encode(),
     "provenance.params.x[1]: refers to itself (a recursive YAML alias)"),
    ("recursive merge", _with_params("  params: &m {<<: *m}\n").encode(),
     "provenance.params.<<: refers to itself (a recursive YAML alias)"),
    ("deep nesting", ("schema: 1\nid: " + "[" * 5000 + "\n").encode(),
     "<root>: nested too deeply (more than 100 levels)"),
    ("billion laughs", _with_params(_bomb()).encode(),
     "<root>: YAML aliases expand too far (more than 100000 extra nodes; write the values out instead)"),
    ("not UTF-8", b"schema: 1\nid: caf\xe9\n", "<root>: not UTF-8 text"),
    ("duplicate key", b"schema: 1\nid: a\nid: b\n",
     "<root>: duplicate key 'id' at line 3, column 1 (first at line 2)"),
    ("duplicate nested key", _with_params("  params:\n    rounds: 5\n    rounds: 6\n").encode(),
     "provenance.params: duplicate key 'rounds' at line 8, column 5 (first at line 7)"),
    ("syntax error", b"schema: 1\nid: [unterminated\n",
     "<root>: not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence at line 2, column 5)"),
]
IDS = [c[0] for c in HOSTILE]


@pytest.mark.parametrize(("raw", "line"), [c[1:] for c in HOSTILE], ids=IDS)
def test_hostile_file_gives_one_clear_line(repo_config: Config, policy_path: Path, raw: bytes,
                                           line: str) -> None:
    policy_path.write_bytes(raw)
    start = time.monotonic()
    with pytest.raises(PolicyError) as info:
        load_policy(policy_path, repo_config)
    assert info.value.problems == [line]
    assert time.monotonic() - start < 2.0  # the bomb is refused without being expanded


@pytest.mark.parametrize(("raw", "line"), [c[1:] for c in HOSTILE], ids=IDS)
def test_cli_validate_reports_hostile_file(policy_path: Path, capsys: pytest.CaptureFixture[str],
                                           raw: bytes, line: str) -> None:
    from tests.policy.conftest import REPO

    policy_path.write_bytes(raw)
    assert _cli([str(policy_path), "--config", str(REPO / "config.yaml")]) == 1
    assert capsys.readouterr().out == f"{policy_path}: {line}\n"


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "proxy.policy" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("raw", [c[1] for c in HOSTILE], ids=IDS)
async def test_watcher_counts_hostile_file_once_and_keeps_old(
        store: PolicyStore, policy_path: Path, registry: CollectorRegistry,
        caplog: pytest.LogCaptureFixture, raw: bytes) -> None:
    caplog.set_level(logging.INFO, logger="proxy.policy")
    policy_path.write_bytes(raw)
    results = [await store.poll() for _ in range(6)]
    failed = [r for r in results if r is not None]
    assert len(failed) == 1 and not failed[0].ok and failed[0].trigger == "watch"
    assert failed[0].problems[0].startswith(f"{policy_path}: ")
    assert store_version(store) == "v1" and store.history[-1] is failed[0]
    assert (reload_count(registry, "ok"), reload_count(registry, "error")) == (0, 1)
    errors = _errors(caplog)
    assert len(errors) == 1 and errors[0].exc_info is None  # one line, no traceback
    assert "keeping test@v1" in errors[0].getMessage()


def test_unexpected_exception_is_a_failed_reload(store: PolicyStore, policy_path: Path,
                                                 registry: CollectorRegistry, config: Config,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(store_module, "parse_policy_files", boom)
    policy_path.write_text(policy_text("v2"))
    result = store.reload("admin")
    line = f"{policy_path}: <root>: cannot be loaded (unexpected RuntimeError: a bug over two lines)"
    assert not result.ok and result.problems == (line,)
    assert store_version(store) == "v1" and (reload_count(registry, "ok"), reload_count(registry, "error")) == (0, 1)
    assert [r.exc_info for r in _errors(caplog)] == [None]
    with pytest.raises(PolicyError) as info:  # at start-up: a clean refusal, as for a bad file
        PolicyStore(config).load_initial()
    assert info.value.problems == [line]


async def test_sighup_with_hostile_file_is_a_counted_failure(
        store: PolicyStore, policy_path: Path, registry: CollectorRegistry) -> None:
    assert store.install_sighup()
    try:
        policy_path.write_text(SELF_ALIAS)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(200):
            if reload_count(registry, "error"):
                break
            await asyncio.sleep(0.01)
        assert store.history[-1].trigger == "sighup" and not store.history[-1].ok
        assert reload_count(registry, "error") == 1 and store_version(store) == "v1"
    finally:
        await store.stop()


@pytest.fixture
async def client(config: Config, policy_path: Path, registry: CollectorRegistry,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.setenv(config.auth.admin_key_env, "k")
    policy_path.write_text(policy_text("v1"))
    app = web.Application()
    setup_policies(app, config, registry, watch=False, sighup=False)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_admin_reload_of_hostile_file_answers_422(client: TestClient, policy_path: Path,
                                                        registry: CollectorRegistry) -> None:
    policy_path.write_text(SELF_ALIAS)
    resp = await client.post("/admin/reload", headers={"Authorization": "Bearer k"})
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "policy_invalid"
    assert body["reload"]["problems"] == [f"{policy_path}: provenance.params.self: refers to itself "
                                          "(a recursive YAML alias)"]
    assert reload_count(registry, "error") == 1
