"""Broken policy files are rejected with the key path of each problem; the CLI's exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import Config, load_config
from proxy.policy.cli_validate import add_arguments as validate_args, run as validate_run
from proxy.policy.load import PolicyError, load_policy, parse_policy
from tests.policy.conftest import REPO, base_policy

Doc = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """Set ``a.b[0].c`` to ``value`` (``_DEL`` removes the key)."""

    def apply(doc: Doc) -> None:
        node: Any = doc
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is _DEL:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


_DEL = object()


_MEAN = "contexts.0.estimates.0.means.accuracy"


def _self_param(doc: Doc) -> None:
    params = doc["provenance"]["params"]
    params["me"] = params  # what parse_policy gets from code, not from YAML (aliases are checked there)


def _dup_context(doc: Doc) -> None:
    doc["contexts"].append(dict(doc["contexts"][0]))


CASES: list[tuple[str, Callable[[Doc], None], str]] = [
    ("unknown schema version", _set("schema", 2), "schema"),
    ("missing schema", _set("schema", _DEL), "schema"),
    ("missing fallback", _set("fallback", _DEL), "fallback"),
    ("missing id", _set("id", _DEL), "id"),
    ("version not a string", _set("version", 1.5), "version"),
    ("missing provenance algorithm", _set("provenance.algorithm", _DEL), "provenance.algorithm"),
    ("non-finite provenance param", _set("provenance.params.lr", float("nan")), "provenance.params.lr"),
    ("unknown top-level key", _set("colour", "blue"), "colour"),
    ("unknown prompt candidate", _set("prompts.1", "nonexistent"), "prompts[1]"),
    ("inline prompt redefines library", _set("prompts.2", {"id": "cot", "suffix": "x"}), "prompts[2].id"),
    ("inline template without {input}", _set("prompts.2", {"id": "t", "template": "no slot"}), "prompts[2].template"),
    ("unknown prompt in action", _set("contexts.0.action.prompt", "ghost"), "contexts[0].action.prompt"),
    ("library prompt not a candidate", _set("contexts.0.action.prompt", "expert"), "contexts[0].action.prompt"),
    ("unknown task", _set("contexts.0.task", "poetry"), "contexts[0].task"),
    ("unknown aggregator", _set("contexts.0.action.aggregator", "mean"), "contexts[0].action.aggregator"),
    ("majority on a task without extractor", _set("contexts.1.action.aggregator", "majority"),
     "contexts[1].action.aggregator"),
    ("unknown scorer", _set("contexts.1.action.scorer", "oracle"), "contexts[1].action.scorer"),
    ("n zero", _set("contexts.0.action.n", 0), "contexts[0].action.n"),
    ("n above n_max", _set("contexts.0.action.n", 33), "contexts[0].action.n"),
    ("n not an integer", _set("contexts.0.action.n", 2.5), "contexts[0].action.n"),
    ("unknown key in action", _set("contexts.0.action.temperature", 0.7), "contexts[0].action.temperature"),
    ("unknown weight objective", _set("contexts.0.weights.speed", 1.0), "contexts[0].weights.speed"),
    ("infinite weight", _set("contexts.0.weights.cost", float("inf")), "contexts[0].weights.cost"),
    ("missing weights", _set("contexts.0.weights", _DEL), "contexts[0].weights"),
    ("NaN mean", _set("contexts.0.estimates.0.means.accuracy", float("nan")),
     "contexts[0].estimates[0].means.accuracy"),
    ("cost as mean", _set("contexts.0.estimates.0.means.cost", 0.1), "contexts[0].estimates[0].means.cost"),
    ("infinite cost", _set("contexts.0.estimates.0.cost", float("inf")), "contexts[0].estimates[0].cost"),
    ("negative observations", _set("contexts.0.estimates.0.observations", -1),
     "contexts[0].estimates[0].observations"),
    ("ci low above high", _set("contexts.0.estimates.0.ci.accuracy", [0.9, 0.7]),
     "contexts[0].estimates[0].ci.accuracy"),
    ("estimate n above n_max", _set("contexts.0.estimates.1.n", 64), "contexts[0].estimates[1].n"),
    ("action not among estimates", _set("contexts.0.action.n", 8), "contexts[0].action"),
    ("duplicate context", _dup_context, "contexts[2]"),
    ("fallback unknown prompt", _set("fallback.prompt", "ghost"), "fallback.prompt"),
    ("fallback n above n_max", _set("fallback.n", 100), "fallback.n"),
    ("classifier artefact missing", _set("classifiers", {"math": "no/such/file.json"}), "classifiers.math"),
    ("no contexts", _set("contexts", _DEL), "contexts"),
    ("classifier artefact a folder", _set("classifiers", {"math": "policies"}), "classifiers.math"),
    ("classifier artefact not npz", _set("classifiers", {"math": "config.yaml"}), "classifiers.math"),
    ("mean above 1", _set(_MEAN, 5), "contexts[0].estimates[0].means.accuracy"),
    ("mean below 0", _set(_MEAN, -5), "contexts[0].estimates[0].means.accuracy"),
    ("best_of_n estimate in a majority task", _set("contexts.0.estimates.1.aggregator", "best_of_n"),
     "contexts[0].estimates[1].aggregator"),
    ("best_of_n action in a majority task", _set("contexts.0.action.aggregator", "best_of_n"),
     "contexts[0].action.aggregator"),
    ("recursive provenance param", _self_param, "provenance.params.me"),
]


@pytest.mark.parametrize(("mutate", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_policy_rejected_with_key_path(repo_config: Config, mutate: Callable[[Doc], None], path: str) -> None:
    doc = base_policy()
    parse_policy(doc, repo_config)  # the base is valid
    mutate(doc)
    with pytest.raises(PolicyError) as info:
        parse_policy(doc, repo_config, base_dir=REPO)
    assert any(line.startswith(f"{path}: ") for line in info.value.problems), info.value.problems


def test_problem_reasons_are_specific(repo_config: Config) -> None:
    doc = base_policy()
    doc["contexts"][0]["action"]["n"] = 33
    with pytest.raises(PolicyError) as info:
        parse_policy(doc, repo_config)
    assert "contexts[0].action.n: must be <= 32" in info.value.problems


@pytest.mark.parametrize(("mutate", "line"), [
    (_set("classifiers", {"math": "policies"}),
     f"classifiers.math: {REPO / 'policies'} is a folder, not an .npz classifier file"),
    (_set("classifiers", {"math": "config.yaml"}),
     f"classifiers.math: {REPO / 'config.yaml'} is not an .npz classifier file"),
    (_set(_MEAN, 5), "contexts[0].estimates[0].means.accuracy: must be <= 1.0"),
    (_set(_MEAN, -5), "contexts[0].estimates[0].means.accuracy: must be >= 0.0"),
    (_set("contexts.0.estimates.1.aggregator", "best_of_n"),
     "contexts[0].estimates[1].aggregator: task 'math' is aggregated by majority in the config; "
     "a best_of_n arm is not allowed"),
    (_self_param, "provenance.params.me: refers to itself (a recursive structure)"),
], ids=["folder", "not-npz", "mean>1", "mean<0", "best_of_n-in-majority", "recursive"])
def test_new_checks_name_key_and_reason(repo_config: Config, mutate: Callable[[Doc], None],
                                        line: str) -> None:
    doc = base_policy()
    mutate(doc)
    with pytest.raises(PolicyError) as info:
        parse_policy(doc, repo_config, base_dir=REPO)
    assert info.value.problems == [line]


def test_npz_classifier_artefact_accepted(repo_config: Config) -> None:
    doc = base_policy()
    doc["classifiers"] = {"math": "policies/classifier.npz"}
    policy = parse_policy(doc, repo_config, base_dir=REPO)
    assert policy.classifiers["math"] == REPO / "policies" / "classifier.npz"


def test_all_problems_reported_at_once(repo_config: Config) -> None:
    doc = base_policy()
    doc["contexts"][0]["task"] = "poetry"
    doc["contexts"][1]["action"]["scorer"] = "oracle"
    del doc["fallback"]
    with pytest.raises(PolicyError) as info:
        parse_policy(doc, repo_config)
    heads = {line.split(": ")[0] for line in info.value.problems}
    assert {"contexts[0].task", "contexts[1].action.scorer", "fallback"} <= heads


@pytest.mark.parametrize("text", [
    "schema: 1\nid: x\nversion: v\ncontexts:\n  - task: math\n    weights: {accuracy: .nan}\n",
    "schema: 1\nid: [unterminated\n",
    "- just\n- a list\n",
])
def test_text_files_rejected(repo_config: Config, tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError):
        load_policy(path, repo_config)


def test_shipped_default_is_valid(repo_config: Config) -> None:
    policy = load_policy(REPO / "policies" / "default.yaml", repo_config)
    # trained live by `iapo train` (policies/README.md); Best-of-N contexts carried over
    assert policy.provenance.algorithm == "psst" and policy.provenance.budget.samples > 0
    assert set(policy.tasks) == {t.name for t in repo_config.tasks}
    for c in policy.contexts:  # each action is the best estimated arm under its own profile
        chosen = c.estimate(c.action)
        assert chosen is not None and len(c.estimates) >= 2
        assert chosen.utility(c.weights) == max(e.utility(c.weights) for e in c.estimates)


def _cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    validate_args(parser)
    return validate_run(parser.parse_args(argv))


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    bad = tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(base_policy()))
    doc = base_policy()
    doc["contexts"][0]["action"]["n"] = 33
    doc["contexts"][0]["task"] = "poetry"
    bad.write_text(yaml.safe_dump(doc))
    config = str(REPO / "config.yaml")
    assert _cli([str(good), "--config", config]) == 0
    assert capsys.readouterr().out == f"{good}: ok (test, v1, 2 contexts)\n"
    assert _cli([str(good), str(bad), "--config", config]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}: contexts[0].action.n: must be <= 32" in out
    assert any(line.startswith(f"{bad}: contexts[0].task: ") for line in out)
    assert len([line for line in out if line.startswith(f"{bad}: ")]) >= 2  # one line per problem
    # two files covering the same tasks conflict
    assert _cli([str(good), str(good), "--config", config]) == 1
    assert _cli([str(good), "--config", str(tmp_path / "missing.yaml")]) == 2


def test_iapo_policy_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.cli import main

    default = str(REPO / "policies" / "default.yaml")
    config = str(REPO / "config.yaml")
    assert main(["policy", "validate", default, "--config", config]) == 0
    assert main(["policy", "show", default, "--config", config]) == 0
    assert "nearest" not in capsys.readouterr().out
    missing = str(tmp_path / "missing.yaml")
    assert main(["policy", "validate", missing, "--config", config]) == 1
    assert capsys.readouterr().out.startswith(f"{missing}: <root>: cannot read file")


def test_iapo_policy_validate_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    doc = base_policy()
    doc["schema"] = 7
    bad.write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "proxy", "policy", "validate", "--config", str(REPO / "config.yaml")]
    ok = subprocess.run([*cmd, str(REPO / "policies" / "default.yaml")], cwd=REPO,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "ok (default," in ok.stdout
    res = subprocess.run([*cmd, str(bad)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stdout.strip() == f"{bad}: schema: unsupported version 7 (supported: 1)"


def test_cli_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from proxy.policy import cli_show

    parser = argparse.ArgumentParser()
    cli_show.add_arguments(parser)
    args = parser.parse_args([str(REPO / "policies" / "default.yaml"), "--config", str(REPO / "config.yaml"),
                              "--weights", "accuracy=1,cost=0.5"])
    assert cli_show.run(args) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("task "))
    assert header.split() == ["task", "profile", "weights", "prompt", "N", "aggregator", "est.utility",
                              "margin", "obs"]
    row = next(line for line in out.splitlines() if line.startswith("math") and "balanced" in line)
    # balanced math: the action's utility under the profile's weights, its margin over the runner-up
    policy = load_policy(REPO / "policies" / "default.yaml", load_config(REPO / "config.yaml"))
    ctx = next(c for c in policy.contexts if (c.task, c.profile) == ("math", "balanced"))
    est = ctx.estimate(ctx.action)
    assert est is not None
    util = est.utility(ctx.weights)
    runner_up = max(e.utility(ctx.weights) for e in ctx.estimates if e is not est)
    assert row.split()[-6:] == [ctx.action.prompt, str(ctx.action.n), "majority", f"{util:.4f}",
                                f"{util - runner_up:+.4f}", str(est.observations)]
    assert "max-utility" in out and "nearest-profile:frugal" in out
    bad = parser.parse_args([str(REPO / "missing.yaml"), "--config", str(REPO / "config.yaml")])
    assert cli_show.run(bad) == 1
