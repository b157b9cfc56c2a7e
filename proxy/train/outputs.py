"""Output files of the trainer's commands: a real up-front check that a path can be written, and
atomic writes (a temporary file in the target's folder, then ``os.replace``).

``os.access`` says yes to root everywhere (even under ``/proc``), so :func:`check_writable`
creates and removes a file in the target's folder instead of asking.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from proxy.train.errors import OutputError

__all__ = ["check_writable", "write_atomic"]

Writer = Callable[[str], object]  # writes the file at the path it is given


def check_writable(path: Path, flag: str) -> None:
    """Raise :class:`OutputError` (naming ``flag`` and ``path``) unless ``path`` can be replaced
    by a file written next to it: it is not a folder or a device, its folder exists and a file
    can be created there. Nothing is left behind."""
    where = f"cannot write {flag} {path}"
    if path.is_dir():
        raise OutputError(f"{where}: it is a folder")
    if path.exists() and not path.is_file():
        raise OutputError(f"{where}: it is not a regular file")
    if not path.parent.is_dir():
        raise OutputError(f"{where}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".check")
    except OSError as exc:
        raise OutputError(f"{where}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def write_atomic(outputs: Sequence[tuple[Path, Writer]]) -> None:
    """Write every ``(path, writer)`` to a temporary file (mode 0644) next to its path, then move
    them all into place: if writing any of them fails, none is replaced; no temporary file stays.
    An ``OSError`` becomes an :class:`OutputError` naming the path."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, write in outputs:
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
                os.close(fd)
                staged.append((tmp, path))
                write(tmp)
                os.chmod(tmp, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
