"""The caller's preference weights, resolved in a fixed order.

1. ``iapo.weights`` in the body (what ``extra_body={"iapo": {...}}`` sends) — source ``body``;
2. the ``x-iapo-weights`` header, ``accuracy=1,cost=0.2`` — source ``header``;
3. ``iapo.profile`` in the body — source ``profile:NAME``;
4. a virtual model alias ``iapo-NAME`` — source ``model:NAME``;
5. the API key's profile — source ``key:NAME``;
6. the default profile — source ``default:NAME``.

The first one present wins (later ones are not consulted, so a bad header is an error even when
the key has a profile). Objectives the caller leaves out weigh 0. Invalid weights — an unknown
objective, a negative, NaN or non-number value, all zeros, an unknown profile — raise
:class:`proxy.errors.InvalidRequest` naming the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import Config, parse_weights
from proxy.errors import InvalidRequest, shown
from proxy.validate import Problems

__all__ = ["MODEL_ALIAS_PREFIX", "ResolvedWeights", "parse_weights_header", "resolve_weights"]

MODEL_ALIAS_PREFIX = "iapo-"


@dataclass(frozen=True, slots=True)
class ResolvedWeights:
    """Weights over every objective (``cost`` included) and where they came from."""

    weights: Mapping[str, float]
    source: str


def parse_weights_header(value: str) -> dict[str, Any]:
    """``"accuracy=1, cost=0.2"`` -> ``{"accuracy": 1.0, "cost": 0.2}``; values that are not
    numbers are kept as strings so that validation names them."""
    out: dict[str, Any] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        if not sep:
            key, sep, raw = part.partition(":")
        if not sep or not key.strip():
            raise InvalidRequest(f"x-iapo-weights: '{part}' is not objective=weight",
                                 param="x-iapo-weights")
        try:
            out[key.strip()] = float(raw.strip())
        except ValueError:
            out[key.strip()] = raw.strip()
    return out


def _validated(raw: Any, config: Config, path: str) -> dict[str, float]:
    problems = Problems()
    weights = parse_weights(raw, config.all_objectives, path, problems)
    if problems:  # a client's keys can be many and long: the message stays short
        lines = [line if len(line) <= 200 else line[:197] + "..." for line in problems.lines[:5]]
        more = len(problems.lines) - len(lines)
        raise InvalidRequest("invalid weights: " + "; ".join(lines)
                             + (f"; and {more} more" if more else ""), param=path)
    return {o: weights.get(o, 0.0) for o in config.all_objectives}


def _profile(config: Config, name: Any, param: str) -> dict[str, float]:
    if not isinstance(name, str) or name not in config.profiles:
        known = ", ".join(config.profiles)
        raise InvalidRequest(f"unknown profile {shown(name)} (known: {known})", param=param)
    return {o: float(config.profiles[name].get(o, 0.0)) for o in config.all_objectives}


def resolve_weights(config: Config, hints: Mapping[str, Any] | None, headers: Mapping[str, str],
                    model: str | None = None, key_profile: str | None = None) -> ResolvedWeights:
    """Resolve the weights of one request in the documented order (see the module docstring)."""
    hints = hints or {}
    if "weights" in hints:
        return ResolvedWeights(_validated(hints["weights"], config, "iapo.weights"), "body")
    header = _header(headers, "x-iapo-weights")
    if header is not None:
        return ResolvedWeights(_validated(parse_weights_header(header), config, "x-iapo-weights"),
                               "header")
    if "profile" in hints:
        name = hints["profile"]
        return ResolvedWeights(_profile(config, name, "iapo.profile"), f"profile:{name}")
    if model and model.startswith(MODEL_ALIAS_PREFIX) and config.model(model) is None:
        name = model[len(MODEL_ALIAS_PREFIX):]
        return ResolvedWeights(_profile(config, name, "model"), f"model:{name}")
    if key_profile is not None:
        return ResolvedWeights(_profile(config, key_profile, "api_key"), f"key:{key_profile}")
    name = config.default_profile
    return ResolvedWeights(_profile(config, name, "default_profile"), f"default:{name}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]``, case-insensitively (a plain mapping is scanned; HTTP headers, a
    :class:`multidict.CIMultiDictProxy`, are case-insensitive already)."""
    value = headers.get(name)
    if value is None and not isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
