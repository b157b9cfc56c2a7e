"""``iapo bench`` argument errors (exit 2, nothing written) and JSON shape."""

from __future__ import annotations

import argparse
import json
import os
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


# -- specs, tables and outputs: exit 2 before any fit runs, nothing written ----------------------
@pytest.fixture
def no_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any fit would run."""
    def run_bench(*args: object, **kwargs: object) -> None:
        raise AssertionError("a fit ran despite the bad input")

    monkeypatch.setattr("proxy.train.bench.run_bench", run_bench)


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("iapo bench: error: "), err
    return err[0]


def test_the_help_example_runs(table: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    assert "psst,psst-k:k=4,burn_in=0.1,ucb" in " ".join(parser.format_help().split())
    out = tmp_path / "r.json"
    assert _run(["--dataset", str(table), "--algorithms", "psst,psst-k:k=4,burn_in=0.1,ucb", "--budgets", "300",
                 "--seeds", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["algorithms"] == ["psst", "psst-k:k=4,burn_in=0.1", "ucb"]
    assert [r["algorithm"] for r in doc["runs"]] == doc["algorithms"]


@pytest.mark.parametrize(("spec", "message"), [
    ("psst-k:k=0", "psst-k: k must be an integer >= 1, got 0"),
    ("psst-k:k=abc", "psst-k: k must be an integer >= 1, got 'abc'"),
    ("psst-k:k=5", "psst-k: k must be at most the number of prompts (4), got 5"),
    ("psst:reuse=bogus", "psst: reuse must be 'auto', 'pooled', 'subsets' or 'blocks', got 'bogus'"),
    ("ucb:c=-1", "ucb: c must be a number >= 0, got -1"),
    ("psst,k=4", "(write psst:k=4)"),
    ("psst,ucb,psst", "--algorithms names 'psst' twice"),
])
def test_bad_learner_spec_exits_2_before_any_fit(table: Path, tmp_path: Path, spec: str, message: str,
                                                 no_fits: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert _run(["--dataset", str(table), "--algorithms", spec, "--budgets", "300", "--json", str(out)]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def _not_archives(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / name for name in ("empty.npz", "array.npz", "array.npy", "text.npz", "cut.npz")}
    files["empty.npz"].write_bytes(b"")
    np.save(files["array.npy"], np.ones(3))
    files["array.npz"].write_bytes(files["array.npy"].read_bytes())
    files["text.npz"].write_text("train_probs = [0.5, 0.5]\n")
    np.savez(files["cut.npz"], a=np.ones(1000))
    files["cut.npz"].write_bytes(files["cut.npz"].read_bytes()[:600])
    return files


@pytest.mark.parametrize(("name", "message"), [
    ("empty.npz", "is not an .npz archive (empty)"),
    ("array.npz", "is not an .npz archive (a single .npy array)"),
    ("array.npy", "is not an .npz archive (a single .npy array)"),
    ("text.npz", "is not an .npz archive (not a zip file)"),
    ("cut.npz", "cannot read"),
])
def test_a_table_that_is_not_an_npz_archive_exits_2(tmp_path: Path, name: str, message: str, no_fits: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = _not_archives(tmp_path)[name]
    assert _run(["--dataset", str(path)]) == 2
    line = _error_line(capsys)
    assert str(path) in line and message in line and "pickled" not in line


@pytest.mark.parametrize(("flag", "where", "message"), [
    ("--json", "folder", "cannot write --json {path}: it is a folder"),
    ("--plot", "folder", "cannot write --plot {path}: it is a folder"),
    ("--json", "missing", "cannot write --json {path}: folder {parent} does not exist"),
    ("--json", "/proc", "cannot write --json {path}: "),  # os.access says yes there to root
    ("--plot", "fifo", "cannot write --plot {path}: it is not a regular file"),
])
def test_unwritable_output_exits_2_before_any_fit(table: Path, tmp_path: Path, flag: str, where: str, message: str,
                                                  no_fits: None, capsys: pytest.CaptureFixture[str]) -> None:
    # never a real device such as /dev/null here: a regression would replace it
    path = {"folder": tmp_path, "missing": tmp_path / "nope" / "r.json", "fifo": tmp_path / "fifo",
            "/proc": Path("/proc/iapo-r.json")}[where]
    if where == "fifo":
        os.mkfifo(path)
    if where == "/proc" and not path.parent.is_dir():
        pytest.skip("no /proc on this system")
    before = sorted(tmp_path.iterdir())
    assert _run(["--dataset", str(table), "--budgets", "300", flag, str(path)]) == 2
    assert message.format(path=path, parent=path.parent) in _error_line(capsys)
    assert sorted(tmp_path.iterdir()) == before


def test_json_and_plot_on_one_file_exits_2(table: Path, tmp_path: Path, no_fits: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.out"
    assert _run(["--dataset", str(table), "--json", str(out), "--plot", str(out)]) == 2
    assert "--json and --plot are the same file" in _error_line(capsys)
    assert not out.exists()


def test_a_failing_plot_leaves_both_outputs_as_they_were(table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    real_plot = cli_bench._plot

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    def plot(*args: object) -> object:
        fig = real_plot(*args)  # type: ignore[arg-type]
        fig.savefig = full_disk  # type: ignore[method-assign]
        return fig

    monkeypatch.setattr(cli_bench, "_plot", plot)
    out, png = tmp_path / "r.json", tmp_path / "u.png"
    out.write_text("old")
    rc = _run(["--dataset", str(table), "--budgets", "300", "--seeds", "1", "--json", str(out), "--plot", str(png)])
    assert rc == 1
    err = capsys.readouterr().err  # after the run's progress bar
    assert err.splitlines()[-1] == f"iapo bench: error: cannot write {png}: No space left on device"
    assert "Traceback" not in err
    assert out.read_text() == "old" and not png.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "small.npz"]  # no temp file left
