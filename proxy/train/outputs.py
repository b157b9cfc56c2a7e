"""Output files of the trainer's commands: a real up-front check that a path can be written, and
atomic writes (:mod:`proxy.atomicio`) whose failures name the path.

``os.access`` says yes to root everywhere (even under ``/proc``), so :func:`check_writable`
creates and removes a file in the target's folder instead of asking.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from proxy.atomicio import Writer, replace_files
from proxy.train.errors import OutputError

__all__ = ["Writer", "check_writable", "write_atomic"]


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
    """:func:`proxy.atomicio.replace_files` (all of ``outputs`` or none), with an ``OSError``
    raised as an :class:`OutputError` naming the path."""
    try:
        replace_files(outputs)
    except OSError as exc:
        raise OutputError(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
