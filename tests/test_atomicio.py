"""Atomic replacement of one or several files: all of them or none, and no temporary file left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from proxy.atomicio import replace_files


def test_a_failing_writer_replaces_nothing_and_names_its_target(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.png"
    first.write_text("old a")

    def fail(tmp: str) -> None:
        raise PermissionError(13, "Permission denied", tmp)

    with pytest.raises(PermissionError) as info:
        replace_files([(first, lambda tmp: Path(tmp).write_text("new a")), (second, fail)])
    assert info.value.filename == str(second)  # the target, not the temporary file
    assert first.read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_every_file_is_replaced_whole_with_mode_0644(tmp_path: Path) -> None:
    text, arrays = tmp_path / "t.yaml", tmp_path / "w.npz"
    text.write_text("old")
    # numpy.savez adds ".npz" to a name without it: the temporary file keeps the extension
    replace_files([(text, lambda tmp: Path(tmp).write_text("new")),
                   (arrays, lambda tmp: np.savez(tmp, w=np.arange(3)))])
    assert text.read_text() == "new"
    assert np.load(arrays)["w"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.yaml", "w.npz"]
    assert {p.stat().st_mode & 0o777 for p in (text, arrays)} == {0o644}
