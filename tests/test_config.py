"""``config.yaml`` validation: every broken config is rejected as a whole, naming the key path."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent
Doc = dict[str, Any]


def _doc() -> Doc:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


def _drop(path: str) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]
    return apply


def _add_model(doc: Doc) -> None:
    doc["models"].append({**doc["models"][0], "api_base": "http://x"})  # same name twice


BROKEN: list[tuple[str, Callable[[Doc], None], str]] = [
    ("unknown top-level key", _set("sever", {}), "sever"),
    ("unknown nested key", _set("server.hots", "x"), "server.hots"),
    ("wrong type", _set("server.port", "eighty"), "server.port"),
    ("port out of range", _set("server.port", 70000), "server.port"),
    ("negative body limit", _set("server.max_body_bytes", -1), "server.max_body_bytes"),
    ("bad api_base", _set("models.0.api_base", "nowhere"), "models[0].api_base"),
    ("api_base with a space", _set("models.0.api_base", "http://exa mple.com/v1"),
     "models[0].api_base: not a URL"),
    ("api_base with a bad port", _set("models.0.api_base", "http://h:99999/v1"),
     "models[0].api_base: not a URL"),
    ("key in place of env name", _set("models.0.api_key_env", "sk-abc123"), "models[0].api_key_env"),
    ("negative price", _set("models.0.input_cost_per_token", -1.0), "models[0].input_cost_per_token"),
    ("duplicate model", _add_model, "models[1].name"),
    ("no models", _set("models", []), "models"),
    ("profile weight NaN", _set("profiles.balanced.accuracy", float("nan")), "profiles.balanced"),
    ("profile on unknown objective", _set("profiles.quality.speed", 1.0), "profiles.quality"),
    ("dangling default profile", _set("default_profile", "cheap"), "default_profile"),
    ("unknown aggregator", _set("tasks.0.aggregator", "mean"), "tasks[0].aggregator"),
    ("dangling scorer", _set("tasks.2.scorer", "nobody"), "tasks[2].scorer"),
    ("dangling judge model", _set("scorers.judge.0.model", "gpt-9"), "scorers.judge[0].model"),
    ("dangling prompter model", _set("prompts.9.rewrite.model", "gpt-9"), "prompts[9].rewrite.model"),
    ("template without {input}", _set("prompts.1.template", "no slot"), "prompts[1].template"),
    ("n_max zero", _set("fanout.n_max", 0), "fanout.n_max"),
    ("min_success over n_max", _set("fanout.min_success", 33),
     "fanout.min_success: must be <= fanout.n_max (32)"),
    ("dangling fallback task", _set("classifier.fallback_task", "poetry"), "classifier.fallback_task"),
    ("fault rates over 1", _set("simulator.error_rate", 0.9), "simulator"),
    ("missing required section", _drop("profiles"), "profiles"),
]


@pytest.mark.parametrize(("mutate", "key"), [(m, k) for _, m, k in BROKEN],
                         ids=[name for name, _, _ in BROKEN])
def test_broken_config_names_the_key(mutate: Callable[[Doc], None], key: str) -> None:
    doc = _doc()
    if key == "simulator":
        doc["simulator"]["drop_rate"] = 0.5
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=REPO)
    assert any(p.startswith(key) for p in info.value.problems), info.value.problems


def test_all_problems_are_reported_at_once() -> None:
    doc = _doc()
    doc["server"]["port"] = -1
    doc["models"][0]["api_base"] = "nowhere"
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=REPO)
    assert len(info.value.problems) >= 2


def test_shipped_config_loads_frozen(tmp_path: Path) -> None:
    config = load_config(REPO / "config.yaml")
    assert isinstance(config, Config) and config.models[0].embedded
    assert config.auth.admin_key_env == "IAPO_ADMIN_KEY"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    bad = tmp_path / "c.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "Traceback" not in str(info.value)


def _scorer(**item: Any) -> Callable[[Doc], None]:
    return _set("scorers.builtin.0", item)


def _action(task: int, action: Any) -> Callable[[Doc], None]:
    return _set(f"tasks.{task}.action", action)


# (mutation, the one problem it must give: key path and reason)
EXACT: list[tuple[str, Callable[[Doc], None], str]] = [
    ("target_tokens not a number", _scorer(objective="brevity", kind="length", target_tokens="x"),
     "scorers.builtin[0].target_tokens: must be an integer"),
    ("negative target_tokens", _scorer(objective="brevity", kind="length", target_tokens=-5),
     "scorers.builtin[0].target_tokens: must be >= 1"),
    ("keywords not strings", _scorer(objective="brevity", kind="keywords", keywords=[1]),
     "scorers.builtin[0].keywords[0]: must be a non-empty string"),
    ("keywords empty", _scorer(objective="brevity", kind="keywords", keywords=[]),
     "scorers.builtin[0].keywords: must list at least one keyword"),
    ("regex pattern a number", _scorer(objective="brevity", kind="regex", pattern=5),
     "scorers.builtin[0].pattern: must be a non-empty string"),
    ("negative judge timeout", _scorer(objective="brevity", kind="judge", model="sim-1", timeout_s=-1),
     "scorers.builtin[0].timeout_s: must be >= 0.001"),
    ("http timeout not a number", _scorer(objective="brevity", kind="http", url="http://x", timeout_s="a"),
     "scorers.builtin[0].timeout_s: must be a number"),
    ("judge max_tokens 0", _scorer(objective="brevity", kind="judge", model="sim-1", max_tokens=0),
     "scorers.builtin[0].max_tokens: must be >= 1"),
    ("rubric a list", _scorer(objective="brevity", kind="judge", model="sim-1", rubric=[1]),
     "scorers.builtin[0].rubric: must be a string"),
    ("rubric without the response", _scorer(objective="brevity", kind="judge", model="sim-1", rubric="Rate."),
     "scorers.builtin[0].rubric: must contain {response} (also available: {objective}, {prompt})"),
    ("scorer without kind", _scorer(objective="brevity", target_tokens=3),
     "scorers.builtin[0].kind: required"),
    ("scorer for cost", _scorer(objective="cost", kind="length"),
     "scorers.builtin[0].objective: 'cost' is measured, not scored (known: accuracy, helpfulness, brevity)"),
    ("two scorers for one objective", _scorer(objective="helpfulness", kind="length"),
     "scorers.builtin[1].objective: duplicate objective 'helpfulness' (also scorers.builtin[0])"),
    ("scorer with no items", _set("scorers.builtin", []),
     "scorers.builtin: must list at least one objective scorer"),
    ("majority action without extractor", _action(3, {"prompt": "plain", "aggregator": "majority", "n": 3}),
     "tasks[3].action.aggregator: majority needs an answer extractor; task 'general' has none"),
    ("best_of_n action on a majority task", _action(0, {"prompt": "cot", "aggregator": "best_of_n"}),
     "tasks[0].action.aggregator: task 'math' is aggregated by majority; a best_of_n action is not allowed"),
    ("empty action", _action(0, {}), "tasks[0].action.prompt: required"),
    ("key in place of key_env", _set("auth", {"keys": [{"key_env": "sk-123"}]}),
     "auth.keys[0].key_env: must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
     "never the key itself"),
    ("key in place of admin_key_env", _set("auth", {"admin_key_env": "sk-123"}),
     "auth.admin_key_env: must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
     "never the key itself"),
    ("dataset missing", _set("tasks.0.dataset", "proxy/data/tasks/nope.jsonl"),
     f"tasks[0].dataset: file not found: {REPO / 'proxy/data/tasks/nope.jsonl'}"),
    ("dataset a folder", _set("tasks.0.dataset", "proxy/data/tasks"),
     f"tasks[0].dataset: {REPO / 'proxy/data/tasks'} is a folder, not a file"),
    ("duplicate objective", _set("objectives", ["accuracy", "helpfulness", "brevity", "accuracy"]),
     "objectives[3]: duplicate 'accuracy'"),
    ("no tasks", _set("tasks", []), "tasks: at least one task is required"),
    ("negative shutdown timeout", _set("server.shutdown_timeout_s", -1),
     "server.shutdown_timeout_s: must be >= 0"),
    ("key max_samples 0", _set("auth", {"keys": [{"key_env": "K", "max_samples": 0}]}),
     "auth.keys[0].max_samples: must be >= 1"),
    ("key max_samples a string", _set("auth", {"keys": [{"key_env": "K", "max_samples": "8"}]}),
     "auth.keys[0].max_samples: must be an integer"),
]


@pytest.mark.parametrize(("mutate", "line"), [(m, k) for _, m, k in EXACT],
                         ids=[name for name, _, _ in EXACT])
def test_broken_config_gives_one_clear_problem(mutate: Callable[[Doc], None], line: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=REPO)
    assert info.value.problems == [line]


def test_empty_rewrite_reports_its_required_keys() -> None:
    doc = _doc()
    doc["prompts"][0]["rewrite"] = {}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=REPO)
    assert info.value.problems == ["prompts[0].rewrite.meta_prompt: required",
                                   "prompts[0].rewrite.model: required"]


def test_scorer_params_are_typed_and_task_action_defaults_to_the_task_aggregator() -> None:
    doc = _doc()
    doc["scorers"]["judge"][0].update(rubric="Rate {response}", timeout_s=5)
    doc["tasks"][3]["action"] = {"prompt": "brief", "n": 4}
    config = parse_config(doc, base_dir=REPO)
    assert dict(config.scorers["builtin"][1].params) == {"keywords": ("because", "for example", "first")}
    assert dict(config.scorers["judge"][0].params) == {"model": "sim-1", "rubric": "Rate {response}",
                                                       "timeout_s": 5.0, "max_tokens": 64}
    assert config.task("general").action.aggregator == "best_of_n"  # type: ignore[union-attr]


@pytest.mark.parametrize("value, want", [(200, 200), (None, None)])
def test_judge_max_tokens_is_set_or_null(value: int | None, want: int | None) -> None:
    doc = _doc()
    doc["scorers"]["judge"][0]["max_tokens"] = value
    assert parse_config(doc, base_dir=REPO).scorers["judge"][0].params["max_tokens"] == want


def test_cost_in_objectives_is_reported_once_without_listing_cost_twice() -> None:
    doc = _doc()
    doc["objectives"] = ["accuracy", "cost"]
    doc["profiles"] = {"balanced": {"accuracy": 1.0, "speed": 1.0}}
    doc["scorers"] = {name: [{"objective": "accuracy", "kind": "json"}] for name in doc["scorers"]}
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base_dir=REPO)
    assert info.value.problems == ["objectives[1]: 'cost' is always an objective; do not list it",
                                   "profiles.balanced.speed: unknown objective (known: accuracy, cost)"]


def test_empty_config_reports_only_the_missing_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["models: required", "profiles: required", "default_profile: required",
                                   "tasks: required", "prompts: required"]


def _bomb(levels: int = 7) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


HOSTILE: list[tuple[str, bytes, str]] = [
    ("not UTF-8", "server: {host: caf\xe9}\n".encode("latin-1"), "<root>: not UTF-8 text"),
    ("deep nesting", ("server: " + "[" * 5000 + "\n").encode(),
     "<root>: nested too deeply (more than 100 levels)"),
    ("nesting just over the limit", ("server: " + "[" * 100 + "]" * 100 + "\n").encode(),
     "<root>: nested too deeply (more than 100 levels)"),
    ("recursive alias", b"server: &s {host: x, self: *s}\n",
     "server.self: refers to itself (a recursive YAML alias)"),
    ("billion laughs", _bomb().encode(),
     "<root>: YAML aliases expand too far (more than 100000 extra nodes; write the values out instead)"),
    ("syntax error", b"models: []\nserver: [unclosed\n",
     "<root>: not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence at line 2, column 9)"),
    ("duplicate section", b"server: {port: 8001}\nmodels: []\nserver: {port: 8002}\n",
     "<root>: duplicate key 'server' at line 3, column 1 (first at line 1)"),
    ("duplicate key", b"server:\n  port: 8001\n  host: 0.0.0.0\n  port: 8002\n",
     "server: duplicate key 'port' at line 4, column 3 (first at line 2)"),
    ("bad date", b"server:\n  host: 2026-13-45\n",
     "<root>: not valid YAML at line 2, column 9: cannot read this value (month must be in 1..12)"),
]


@pytest.mark.parametrize(("raw", "line"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_config_file_gives_one_line(tmp_path: Path, raw: bytes, line: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [line]
    assert str(info.value) == f"{path}: {line}"  # the file, then the one line
    assert time.monotonic() - start < 2.0  # an alias bomb is refused without being expanded


def test_aliases_that_stay_small_still_work(tmp_path: Path) -> None:
    doc = (REPO / "config.yaml").read_text().replace(
        "  quality: {accuracy: 1.0, helpfulness: 1.0, brevity: 0.0, cost: 0.0}",
        "  quality: &q {accuracy: 1.0, helpfulness: 1.0, brevity: 0.0, cost: 0.0}\n  quality2: *q")
    path = tmp_path / "config.yaml"
    path.write_text(doc.replace("proxy/data/", f"{REPO}/proxy/data/"))
    assert load_config(path).profiles["quality2"] == load_config(path).profiles["quality"]


def test_api_keys_parse_with_profile_and_max_samples() -> None:
    doc = _doc()
    doc["auth"] = {"keys": [{"key_env": "TENANT_A", "profile": "frugal", "max_samples": 8},
                            {"key_env": "TENANT_B"}]}
    keys = parse_config(doc, base_dir=REPO).auth.keys
    assert [(k.key_env, k.profile, k.max_samples) for k in keys] == [
        ("TENANT_A", "frugal", 8), ("TENANT_B", None, None)]
