"""Learner registry: ``LEARNERS`` name -> class, :func:`make_learner` and the spec grammar.

A spec is a name with optional parameters: ``name[:key=value[,key=value...]]``, e.g.
``"psst-k:k=8,burn_in=0.2"`` or ``"psst:reuse=blocks"``. Values are read as an integer, a
number, ``true`` / ``false``, or else kept as text. A list of specs (:func:`split_specs`) is
comma-separated too: an item ``key=value`` continues the parameters of the spec before it,
any other item starts a new spec (``"psst,psst-k:k=4,burn_in=0.1,ucb"`` is three); ``;`` also
separates specs. Every error is a :class:`~proxy.train.errors.ParamError` naming the learner.
"""

from __future__ import annotations

import inspect
from typing import Any

from proxy.train.base import Learner
from proxy.train.baselines import UCB, EpsilonGreedy, RandomArms, Softmax, Uniform
from proxy.train.errors import ParamError
from proxy.train.psst import PSST, PSSTK
from proxy.train.triple import Decoupled, TripleN1, TripleRandomN

__all__ = ["LEARNERS", "make_learner", "parse_spec", "split_specs"]

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls
    for cls in (PSST, PSSTK, Uniform, UCB, EpsilonGreedy, Softmax, RandomArms, TripleN1, TripleRandomN, Decoupled)
}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:a=1,b=x"`` -> ``("name", {"a": 1, "b": "x"})``; raises :class:`ParamError`."""
    name, _, rest = spec.strip().partition(":")
    if name not in LEARNERS:
        raise ParamError(f"unknown algorithm {name!r} (known: {', '.join(LEARNERS)})")
    params: dict[str, Any] = {}
    for item in filter(None, (i.strip() for i in rest.split(","))):
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ParamError(f"{name}: bad parameter {item!r} in {spec!r} (expected key=value)")
        if key in params:
            raise ParamError(f"{name}: parameter {key!r} is given twice in {spec!r}")
        params[key] = _value(val.strip())
    return name, params


def split_specs(text: str) -> list[str]:
    """The specs of a list (module docstring): ``"psst,psst-k:k=4,burn_in=0.1,ucb"`` ->
    ``["psst", "psst-k:k=4,burn_in=0.1", "ucb"]``. Only the grammar is checked here."""
    specs: list[str] = []
    for group in text.split(";"):
        first = len(specs)
        for item in (i.strip() for i in group.split(",")):
            if not item:
                continue
            if "=" in item and ":" not in item:  # key=value: a parameter of the spec before it
                if len(specs) == first or ":" not in specs[-1]:
                    hint = specs[-1] if len(specs) > first else "NAME"
                    raise ParamError(f"parameter {item!r} does not follow a learner with parameters "
                                     f"(write {hint}:{item})")
                specs[-1] += f",{item}"
            else:
                specs.append(item)
    return specs


def make_learner(name: str, **params: Any) -> Learner:
    """Instantiate and validate a learner by registry name (or spec string) with keyword
    parameters (they override the spec's); raises :class:`ParamError`."""
    base, extra = parse_spec(name)
    cls = LEARNERS[base]
    known = list(inspect.signature(cls).parameters)
    merged = {**extra, **params}
    unknown = [k for k in merged if k not in known]
    if unknown:
        raise ParamError(f"{base}: unknown parameter {unknown[0]!r} (known: {', '.join(known)})")
    learner = cls(**merged)
    learner.validate()
    return learner
