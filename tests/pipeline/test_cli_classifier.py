"""``iapo classifier`` on bad input: a bad task set line or a missing output folder is a clear
error (exit 2) and nothing is written; the temporary file is unique to the run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from proxy.cli import main

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, dataset: Path | None = None) -> Path:
    """The repository's config with absolute paths (the first task's set replaced)."""
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    for task in data["tasks"]:
        if "dataset" in task:
            task["dataset"] = str(REPO / task["dataset"])
    if dataset is not None:
        data["tasks"][0]["dataset"] = str(dataset)
    data["policies"]["paths"] = [str(REPO / p) for p in data["policies"]["paths"]]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_bad_task_set_line_is_named_and_nothing_is_written(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "math.jsonl"
    bad.write_text('{"input": "What is 2 + 2?"}\n\n{"input": 3}\n', encoding="utf-8")
    config = _config(tmp_path, bad)
    out = tmp_path / "out" / "c.npz"
    out.parent.mkdir()
    assert main(["classifier", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {config}: tasks[0].dataset: {bad}:3: 'input' must be a non-empty string\n"
    assert not any(out.parent.iterdir())


def test_a_missing_output_folder_is_rejected_not_created(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no" / "such" / "c.npz"
    assert main(["classifier", "--config", str(_config(tmp_path)), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: cannot write --out {out}: "
                                       f"folder {out.parent} does not exist\n")
    assert not (tmp_path / "no").exists()


def test_the_temporary_file_is_unique_to_the_run(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.npz"
    other = tmp_path / "c.tmp.npz"  # what a concurrent run with the old fixed name is writing
    other.write_bytes(b"another run's half-written file")
    assert main(["classifier", "--config", str(_config(tmp_path)), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert other.read_bytes() == b"another run's half-written file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "c.tmp.npz", "config.yaml"]
