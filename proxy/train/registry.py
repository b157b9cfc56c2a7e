"""Learner registry: ``LEARNERS`` name -> class, and :func:`make_learner`.

A spec may carry parameters: ``"psst-k:k=8,burn_in=0.2"`` or ``"psst:reuse=blocks"``.
"""

from __future__ import annotations

from typing import Any

from proxy.train.base import Learner
from proxy.train.baselines import UCB, EpsilonGreedy, RandomArms, Softmax, Uniform
from proxy.train.psst import PSST, PSSTK
from proxy.train.triple import Decoupled, TripleN1, TripleRandomN

__all__ = ["LEARNERS", "make_learner", "parse_spec"]

LEARNERS: dict[str, type[Learner]] = {
    "psst": PSST,
    "psst-k": PSSTK,
    "uniform": Uniform,
    "ucb": UCB,
    "epsilon-greedy": EpsilonGreedy,
    "softmax": Softmax,
    "random": RandomArms,
    "triple-n1": TripleN1,
    "triple-random-n": TripleRandomN,
    "decoupled": Decoupled,
}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:a=1,b=x"`` -> ``("name", {"a": 1, "b": "x"})``; raises ``ValueError``."""
    name, _, rest = spec.strip().partition(":")
    if name not in LEARNERS:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(LEARNERS)})")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise ValueError(f"bad parameter {item!r} in {spec!r} (expected key=value)")
        params[key] = _value(val)
    return name, params


def make_learner(name: str, **params: Any) -> Learner:
    """Instantiate a learner by registry name (or spec string) with keyword parameters."""
    base, extra = parse_spec(name)
    try:
        return LEARNERS[base](**{**extra, **params})
    except TypeError as exc:
        raise ValueError(f"bad parameters for {base!r}: {exc}") from exc
