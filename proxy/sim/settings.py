"""Simulator settings and fault selection.

Faults: ``error`` (500 body), ``rate_limit`` (429 with ``retry-after``), ``slow`` (sleep
``slow_s`` first), ``drop`` (connection closed mid-response) and ``malformed`` (200 with a body
that is not JSON). Each has a rate in the settings; per request, the header
``x-sim-fault: NAME`` forces one, and ``x-sim-fault-rate`` overrides rates: ``0.3`` (with
``x-sim-fault``: that fault with probability 0.3) or ``error=0.3,drop=0.1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SimSettings", "FAULTS", "FaultHeaderError", "choose_fault", "DEFAULT_TASKS_DIR"]

FAULTS = ("error", "rate_limit", "slow", "drop", "malformed")
DEFAULT_TASKS_DIR = Path(__file__).resolve().parent.parent / "data" / "tasks"


class FaultHeaderError(ValueError):
    """An ``x-sim-fault`` / ``x-sim-fault-rate`` header that cannot be understood."""


@dataclass(frozen=True)
class SimSettings:
    seed: int = 0
    ttft_s: float = 0.0
    tpot_s: float = 0.0
    jitter: float = 0.0            # relative: latency *= 1 + jitter * U(-1, 1)
    tasks_dir: Path = field(default=DEFAULT_TASKS_DIR)
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    slow_rate: float = 0.0
    slow_s: float = 30.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    model_names: tuple[str, ...] = ("sim-1",)

    def __post_init__(self) -> None:
        for name in ("ttft_s", "tpot_s", "retry_after_s", "slow_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"SimSettings.{name} must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("SimSettings.jitter must be in [0, 1]")
        for fault in FAULTS:
            rate = getattr(self, f"{fault}_rate")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"SimSettings.{fault}_rate must be in [0, 1]")
        if sum(getattr(self, f"{f}_rate") for f in FAULTS) > 1.0:
            raise ValueError("SimSettings fault rates must sum to at most 1")

    def fault_rates(self) -> dict[str, float]:
        return {f: getattr(self, f"{f}_rate") for f in FAULTS}


def _parse_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise FaultHeaderError(f"bad fault rate {text!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise FaultHeaderError(f"fault rate {text!r} not in [0, 1]")
    return rate


def choose_fault(settings: SimSettings, headers: Mapping[str, str],
                 rng: np.random.Generator) -> str | None:
    """The fault to inject into this request, or None."""
    forced = headers.get("x-sim-fault")
    rate_h = headers.get("x-sim-fault-rate")
    if forced is not None:
        forced = forced.strip().lower()
        if forced in ("", "none"):
            return None
        if forced not in FAULTS:
            raise FaultHeaderError(f"unknown x-sim-fault {forced!r}; one of {FAULTS}")
        if rate_h is None:
            return forced
        return forced if rng.random() < _parse_rate(rate_h.strip()) else None
    rates = settings.fault_rates()
    if rate_h is not None:
        rates = dict.fromkeys(FAULTS, 0.0)
        for part in rate_h.split(","):
            name, sep, val = part.partition("=")
            if not sep or name.strip() not in FAULTS:
                raise FaultHeaderError(f"bad x-sim-fault-rate part {part!r}")
            rates[name.strip()] = _parse_rate(val.strip())
    total = sum(rates.values())
    if total <= 0.0:
        return None
    x = rng.random()
    for name, rate in rates.items():
        if x < rate:
            return name
        x -= rate
    return None
