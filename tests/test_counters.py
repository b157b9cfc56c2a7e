"""proxy.counters renders exactly what prometheus_client renders for the same updates."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.counters import LoopCounter, LoopHistogram

_BUCKETS = (0.005, 0.01, 0.1, 1, 2.5)


def _exercise(registry: CollectorRegistry, counter, histogram) -> CollectorRegistry:
    counter.labels("a", 200).inc()
    counter.labels("a", "200").inc(2.5)
    counter.labels("b", 404).inc()
    for value in (0.001, 0.005, 0.0051, 0.5, 3, 100):
        histogram.labels("a").observe(value)
    histogram.labels("b").observe(0.01)
    return registry


def _text(registry: CollectorRegistry) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


def test_same_exposition_as_prometheus_client() -> None:
    ref = CollectorRegistry(auto_describe=True)
    _exercise(ref, Counter("iapo_x", "X things", ["model", "status"], registry=ref),
              Histogram("iapo_y", "Y seconds", ["model"], buckets=_BUCKETS, registry=ref))
    ours = CollectorRegistry(auto_describe=True)
    _exercise(ours, LoopCounter("iapo_x", "X things", ["model", "status"], ours),
              LoopHistogram("iapo_y", "Y seconds", ["model"], ours, buckets=_BUCKETS))
    assert _text(ours) == _text(ref)
    assert ours.get_sample_value("iapo_y_bucket", {"model": "a", "le": "0.005"}) == 2.0
    assert ours.get_sample_value("iapo_x_total", {"model": "a", "status": "200"}) == 3.5


def test_duplicates_wrong_labels_and_decrements_are_refused() -> None:
    registry = CollectorRegistry(auto_describe=True)
    counter = LoopCounter("iapo_x", "X", ["model"], registry)
    with pytest.raises(ValueError):
        LoopCounter("iapo_x", "again", ["model"], registry)
    with pytest.raises(ValueError):
        counter.labels("a", "b")
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
