"""Reading untrusted YAML/JSON mappings with key paths: the shared core of config and policy
validation.

A :class:`Reader` wraps one mapping at a key path. Each accessor returns a usable value (the
default when missing or invalid) and records a ``path: reason`` problem instead of raising, so one
pass reports every problem of a file. :meth:`Reader.done` reports keys nobody asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Problems", "Reader"]

_MISSING: Any = object()


class Problems:
    """An ordered list of ``path: reason`` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, reason: str) -> None:
        self.lines.append(f"{path or '<root>'}: {reason}")

    def __bool__(self) -> bool:
        return bool(self.lines)


class Reader:
    """Typed access to one mapping at ``path``; problems go to ``problems``."""

    def __init__(self, data: Any, path: str, problems: Problems, base_dir: Path) -> None:
        self.path = path
        self.problems = problems
        self.base_dir = base_dir
        self._seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            problems.add(path, "must be a mapping")
            data = {}
        self.data: Mapping[str, Any] = data

    def __bool__(self) -> bool:
        return bool(self.data)

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, reason: str) -> None:
        self.problems.add(self._key(key), reason)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self._seen.add(key)
        return self.data.get(key, default)

    def _get(self, key: str, required: bool) -> Any:
        self._seen.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING and required:
            self.problem(key, "required")
        return value

    def str(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not value:
            self.problem(key, "must be a non-empty string")
            return default
        return value

    def opt_str(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return None
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def int(self, key: str, default: int, *, lo: int | None = None, hi: int | None = None,
            required: bool = False) -> int:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, "must be an integer")
            return default
        return self._range(key, value, default, lo, hi)

    def float(self, key: str, default: float, *, lo: float | None = None,
              hi: float | None = None, required: bool = False) -> float:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        return self._float(key, value, default, lo, hi)

    def opt_int(self, key: str, *, lo: int | None = None, hi: int | None = None) -> int | None:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return None
        return self.int(key, 0, lo=lo, hi=hi)

    def opt_float(self, key: str, *, lo: float | None = None, hi: float | None = None) -> float | None:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return None
        return self._float(key, value, None, lo, hi)

    def _float(self, key: str, value: Any, default: Any, lo: float | None, hi: float | None) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(key, "must be a number")
            return default
        if not math.isfinite(value):
            self.problem(key, "must be a finite number")
            return default
        return self._range(key, float(value), default, lo, hi)

    def _range(self, key: str, value: Any, default: Any, lo: Any, hi: Any) -> Any:
        if lo is not None and value < lo:
            self.problem(key, f"must be >= {lo}")
            return default
        if hi is not None and value > hi:
            self.problem(key, f"must be <= {hi}")
            return default
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.opt_choice(key, choices)
        return default if value is None else value

    def opt_choice(self, key: str, choices: Sequence[str]) -> str | None:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return None
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)} (got {value!r})")
            return None
        return str(value)

    def opt_path(self, key: str) -> Path | None:
        value = self.opt_str(key)
        return None if value is None else self._resolve(value)

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def _list(self, key: str, required: bool) -> list[Any]:
        value = self._get(key, required)
        if value is _MISSING or value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list")
            return []
        return value

    def str_list(self, key: str, default: list[str] | None = None) -> list[str]:
        if key not in self.data and default is not None:
            self._seen.add(key)
            return list(default)
        out = []
        for i, item in enumerate(self._list(key, False)):
            if isinstance(item, str) and item:
                out.append(item)
            else:
                self.problem(f"{key}[{i}]", "must be a non-empty string")
        return out

    def path_list(self, key: str) -> list[Path]:
        return [self._resolve(s) for s in self.str_list(key)]

    def mapping(self, key: str, *, required: bool = False) -> Mapping[str, Any]:
        value = self._get(key, required)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(key, "must be a mapping")
            return {}
        return value

    def sub(self, key: str, default: Any = None) -> Reader:
        """A reader for the nested mapping at ``key`` (empty when missing)."""
        value = self._get(key, False)
        if value is _MISSING:
            value = default
        return Reader(value, self._key(key), self.problems, self.base_dir)

    def list_of_readers(self, key: str, *, required: bool = False) -> Iterator[tuple[int, Reader]]:
        """Readers for each mapping in the list at ``key``; each is checked with ``done``."""
        for i, item in enumerate(self._list(key, required)):
            reader = Reader(item, f"{self._key(key)}[{i}]", self.problems, self.base_dir)
            yield i, reader
            reader.done()

    def done(self) -> None:
        """Report every key of the mapping that no accessor asked for."""
        for key in self.data:
            if key not in self._seen:
                self.problem(str(key), "unknown key")
        self._seen.update(str(k) for k in self.data)
