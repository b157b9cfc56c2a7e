"""Atomic file replacement: what a watching proxy, or a user reading a result, sees is the old
file or the whole new one, never half of it.

Each file is written to a unique temporary file in its target's folder (so the rename stays on
one file system and concurrent writers do not collide) that ends in the target's extension (for
writers that pick a format by it, or add it: ``numpy.savez``), made mode 0644, fsynced, and renamed
over the target with ``os.replace``. Writing several files stages all of them first: if any one
fails, none is replaced. No temporary file is left behind either way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["Writer", "replace_files"]

Writer = Callable[[str], object]  # writes the whole file at the path it is given


def replace_files(outputs: Sequence[tuple[Path, Writer]]) -> None:
    """Write every ``(path, writer)`` next to its path, then move them all into place.

    Raises ``OSError`` whose ``filename`` is the target that could not be written."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, write in outputs:
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                           suffix=".tmp" + path.suffix)
                os.close(fd)
                staged.append((tmp, path))
                write(tmp)
                os.chmod(tmp, 0o644)
                _fsync(tmp)
            except OSError as exc:
                raise _naming(exc, path) from None
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _naming(exc, path) from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (the temporary file's name would mean nothing to a user)."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))
