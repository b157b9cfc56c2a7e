"""Labelled counters and histograms for the request path: plain floats, no locks.

prometheus_client's metric children take a lock and run several checks on every update (about
0.3 us a counter increment, 0.6 us a histogram observation, measured); the proxy updates about
ten per request. These keep one plain float (per bucket) for each label set and are exported
through the same registry as ordinary ``counter`` and ``histogram`` families, with the samples
prometheus_client renders for its own (``_total`` and ``_created``; ``_bucket``, ``_count``,
``_sum`` and ``_created``), so ``/metrics`` and ``registry.get_sample_value`` see no difference.

Not thread-safe by design: update them from one thread, the event loop's (every request-path
update happens there). The API is the part of prometheus_client's that the proxy uses:
``.labels(*values)`` then ``.inc(amount)`` or ``.observe(value)``.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["LoopCounter", "LoopHistogram"]


class _CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose upper bound is >= it."""
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1


class _Labelled:
    """The label handling shared by both kinds; registers itself on ``registry``."""

    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _CounterChild | _HistogramChild] = {}
        registry.register(self)

    def _child(self, values: tuple[object, ...]) -> _CounterChild | _HistogramChild:
        key = tuple(map(str, values))
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
            child = self._children[key] = self._new_child()
        return child

    def _new_child(self) -> _CounterChild | _HistogramChild:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        """The (empty) family, so the registry can refuse a duplicate name at registration."""
        return [Metric(self.name, self.documentation, self.kind)]


class LoopCounter(_Labelled):
    """A labelled counter; ``name`` without ``_total`` (as for prometheus_client)."""

    kind = "counter"

    def labels(self, *values: object) -> _CounterChild:
        child = self._child(values)
        assert isinstance(child, _CounterChild)
        return child

    def _new_child(self) -> _CounterChild:
        return _CounterChild()

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for key, child in list(self._children.items()):
            assert isinstance(child, _CounterChild)
            labels = dict(zip(self.labelnames, key))
            metric.add_sample(self.name + "_total", labels, child.value)
            metric.add_sample(self.name + "_created", labels, child.created)
        yield metric


class LoopHistogram(_Labelled):
    """A labelled histogram with fixed ``buckets`` (upper bounds; ``+Inf`` is added)."""

    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        self._les = tuple(floatToGoString(b) for b in self.bounds)
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: object) -> _HistogramChild:
        child = self._child(values)
        assert isinstance(child, _HistogramChild)
        return child

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for key, child in list(self._children.items()):
            assert isinstance(child, _HistogramChild)
            labels = dict(zip(self.labelnames, key))
            total = 0
            for le, count in zip(self._les, child.counts):
                total += count
                metric.add_sample(self.name + "_bucket", {**labels, "le": le}, float(total))
            metric.add_sample(self.name + "_count", labels, float(total))
            metric.add_sample(self.name + "_sum", labels, child.sum)
            metric.add_sample(self.name + "_created", labels, child.created)
        yield metric
