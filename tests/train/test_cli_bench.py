"""``iapo bench`` argument errors (exit 2, nothing written) and JSON shape."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from proxy.train import cli_bench


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    return cli_bench.run(parser.parse_args(argv))


@pytest.fixture
def table(tmp_path: Path, make_arrays) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "small.npz"
    np.savez(path, **make_arrays(0, n_prompts=4, n_train=10, n_test=6))
    return path


def test_json_shape(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    rc = _run(["--dataset", str(table), "--algorithms", "psst,uniform,decoupled", "--budgets", "300,600",
               "--seeds", "2", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert len(doc["runs"]) == 3 * 2 * 2
    run = doc["runs"][0]
    assert {"algorithm", "budget", "seed", "actions", "samples", "seconds"} <= set(run)
    assert set(run["actions"]) == {"low", "mid", "high"}
    p, n = run["actions"]["low"]
    assert 0 <= p < 4 and 1 <= n <= 32
    assert all(r["samples"] <= r["budget"] for r in doc["runs"])
    assert len(doc["summary"]) == 6 and "test_mean" in doc["summary"][0]
    assert "psst" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--algorithms", "nope"],
        ["--budgets", "2"],
        ["--budgets", "abc"],
        ["--seeds", "0"],
        ["--budgets", "-5"],
    ],
)
def test_bad_input_exits_2_and_writes_nothing(table: Path, tmp_path: Path, argv: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    rc = _run(["--dataset", str(table), "--budgets", "300", "--seeds", "1", "--json", str(out), *argv])
    assert rc == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iapo bench: error:")


def test_missing_or_malformed_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--dataset", str(tmp_path / "none.npz")]) == 2
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_probs=np.ones((2, 3, 4)))
    assert _run(["--dataset", str(bad)]) == 2
    assert "train_answers" in capsys.readouterr().err


def test_plot_is_written(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "u.png"
    assert _run(["--dataset", str(table), "--algorithms", "psst", "--budgets", "200,400", "--seeds", "2",
                 "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".u.png*"))  # no temp file left behind
