"""Shared fixtures: the repo's config with policies in a temp dir, and a small valid policy."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from prometheus_client import CollectorRegistry

from proxy.config import AuthConfig, Config, PoliciesConfig, load_config
from proxy.policy.store import PolicyStore

REPO = Path(__file__).resolve().parents[2]

_BASE: dict[str, Any] = {
    "schema": 1,
    "id": "test",
    "version": "v1",
    "provenance": {
        "algorithm": "psst", "params": {"rounds": 5, "reuse": "subsets"},
        "budget": {"samples": 1000, "tokens": 200000, "cost_usd": 0.4},
        "datasets": ["proxy/data/tasks/math.jsonl"], "upstream_model": "sim-1", "seed": 0,
        "date": "2026-11-22", "project_version": "0.1.0",
    },
    "prompts": ["cot", "plain", {"id": "short", "suffix": "\n\nBe short."}],
    "fallback": {"prompt": "plain", "n": 1, "aggregator": "best_of_n", "scorer": "builtin"},
    "contexts": [
        {
            "task": "math", "profile": "balanced",
            "weights": {"accuracy": 1.0, "helpfulness": 0.5, "brevity": 0.1, "cost": 0.2},
            "action": {"prompt": "cot", "n": 4, "aggregator": "majority"},
            "estimates": [
                {"prompt": "cot", "n": 4, "aggregator": "majority", "means": {"accuracy": 0.8},
                 "cost": 0.15, "observations": 50, "ci": {"accuracy": [0.7, 0.9]}},
                {"prompt": "plain", "n": 1, "aggregator": "majority", "means": {"accuracy": 0.5},
                 "cost": 0.02, "observations": 200},
            ],
        },
        {
            "task": "general", "profile": "quality",
            "weights": {"accuracy": 1.0, "helpfulness": 1.0},
            "action": {"prompt": "short", "n": 2, "aggregator": "best_of_n", "scorer": "builtin"},
            "estimates": [
                {"prompt": "short", "n": 2, "aggregator": "best_of_n", "scorer": "builtin",
                 "means": {"helpfulness": 0.7, "brevity": 0.9}, "cost": 0.05, "observations": 30,
                 "ci": {"utility": [0.6, 0.8]}},
            ],
        },
    ],
}


def base_policy(version: str = "v1") -> dict[str, Any]:
    """A fresh deep copy of a small valid policy document."""
    data = copy.deepcopy(_BASE)
    data["version"] = version
    return data


def policy_text(version: str, valid: bool = True) -> str:
    data = base_policy(version)
    if not valid:
        data["contexts"][0]["action"]["n"] = 999
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture(scope="session")
def repo_config() -> Config:
    return load_config(REPO / "config.yaml")


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    return tmp_path / "policy.yaml"


@pytest.fixture
def config(repo_config: Config, policy_path: Path) -> Config:
    """The repo config serving one policy file in a temp dir, watched every 50 ms; admin key in
    ``IAPO_TEST_ADMIN_KEY`` (explicit: ``AuthConfig``'s slotted default is not a string)."""
    return replace(repo_config, policies=PoliciesConfig(paths=(policy_path,), watch_interval_s=0.05),
                   auth=AuthConfig(admin_key_env="IAPO_TEST_ADMIN_KEY"))


W = {"accuracy": 1.0, "cost": 0.1}


def reload_count(registry: CollectorRegistry, result: str) -> float:
    return registry.get_sample_value("iapo_policy_reload_total", {"result": result}) or 0.0


def store_version(store: PolicyStore) -> str:
    return store.current.select("math", W).policy_version


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def store(config: Config, policy_path: Path, registry: CollectorRegistry) -> PolicyStore:
    policy_path.write_text(policy_text("v1"))
    s = PolicyStore(config, registry)
    s.load_initial()
    return s
