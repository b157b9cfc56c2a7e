"""``iapo policy show`` on bad input: config errors name the config file (exit 2, as ``validate``)
and ``--weights`` is checked as the server checks ``x-iapo-weights``, before anything is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main

REPO = Path(__file__).resolve().parents[2]
POLICY = str(REPO / "policies" / "default.yaml")
CONFIG = str(REPO / "config.yaml")


def test_a_bad_config_is_named_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "list.yaml"
    config.write_text("- a\n", encoding="utf-8")
    assert main(["policy", "show", POLICY, "--config", str(config)]) == 2
    show = capsys.readouterr()
    assert main(["policy", "validate", POLICY, "--config", str(config)]) == 2
    assert show == capsys.readouterr()  # the same lines as validate, nothing on stdout
    assert show.out == "" and show.err.startswith(f"error: {config}: <root>: must be a mapping\n")
    assert POLICY not in show.err


@pytest.mark.parametrize(("weights", "problem"), [
    ("bogus=1", "--weights.bogus: unknown objective (known: accuracy, helpfulness, brevity, cost)"),
    ("accuracy=-1", "--weights.accuracy: must be a finite number >= 0"),
    ("accuracy=nan", "--weights.accuracy: must be a finite number >= 0"),
    ("cost=inf", "--weights.cost: must be a finite number >= 0"),
    ("accuracy=0", "--weights: weights must not all be zero"),
    ("accuracy=x", "--weights.accuracy: must be a number"),
    ("accuracy", "--weights: expected objective=weight,... e.g. accuracy=1,cost=0.5"),
])
def test_bad_weights_are_rejected_before_anything_is_printed(
        weights: str, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", POLICY, "--config", CONFIG, "--weights", weights]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {problem}\n")


def test_good_weights_fill_the_other_objectives_with_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", POLICY, "--config", CONFIG, "--weights", "accuracy=1, cost=0.5"]) == 0
    assert "for weights accuracy=1 helpfulness=0 brevity=0 cost=0.5:" in capsys.readouterr().out
