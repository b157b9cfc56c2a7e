"""The policy package's public surface (what the server, pipeline and trainer import)."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "proxy.policy": {"ArmEstimate", "Context", "Policy", "PolicyError", "PolicySet", "PolicyStore",
                     "Provenance", "ReloadResult", "load_policy", "load_policy_set", "parse_policy"},
    "proxy.policy.schema": {"SCHEMA_VERSION", "SUPPORTED_SCHEMAS", "UTILITY", "ArmEstimate", "Budget",
                            "Context", "Interval", "Policy", "Provenance", "arm_key", "utility"},
    "proxy.policy.load": {"PolicyError", "load_policy", "parse_policy", "parse_policy_bytes"},
    "proxy.policy.write": {"dump_policy", "policy_to_dict", "write_policy"},
    "proxy.policy.select": {"cosine_distance", "l1_normalise", "nearest_context", "pooled_arms",
                            "same_direction", "select_action"},
    "proxy.policy.policyset": {"PolicySet", "build_policy_set", "load_policy_set", "read_files",
                               "parse_policy_files"},
    "proxy.policy.store": {"PolicyMetrics", "PolicyStore", "ReloadResult"},
    "proxy.policy.web": {"POLICY_STORE", "check_admin", "setup_policies"},
    "proxy.policy.cli_validate": {"add_arguments", "run"},
    "proxy.policy.cli_show": {"add_arguments", "format_policy", "run"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exports(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == EXPECTED[name]
    for attr in module.__all__:
        assert hasattr(module, attr), attr
