"""Prometheus metrics on a registry owned by each app (never the global one: tests build many).

Other parts (policies, pipeline) register their own collectors on :attr:`Metrics.registry`.
The per-request ones are :mod:`proxy.counters` (lock-free, updated on the event loop).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from proxy.counters import LoopCounter, LoopHistogram
from proxy.upstream.base import Usage

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The proxy's own counters and histograms.

    - ``iapo_requests_total{model,status}``: client requests by HTTP status.
    - ``iapo_request_seconds{model}``: client request latency (to the last byte for streams).
    - ``iapo_upstream_calls_total{model,outcome}``: upstream calls, ``ok`` or the error code.
    - ``iapo_tokens_total{model,kind}``: upstream tokens, ``prompt`` / ``completion``.
    - ``iapo_cost_usd_total{model}``: upstream cost in dollars.

    ``model`` is always a configured model or alias (a bounded set): ``""`` for a request
    refused before its model was known (bad body, unknown model).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = LoopCounter("iapo_requests", "Client requests", ["model", "status"], r)
        self.request_seconds = LoopHistogram("iapo_request_seconds", "Client request latency",
                                             ["model"], r, buckets=_LATENCY_BUCKETS)
        self.upstream_calls = LoopCounter("iapo_upstream_calls", "Upstream calls",
                                          ["model", "outcome"], r)
        self.tokens = LoopCounter("iapo_tokens", "Upstream tokens", ["model", "kind"], r)
        self.cost = LoopCounter("iapo_cost_usd", "Upstream cost in US dollars", ["model"], r)
        # Labelled children, cached: ``labels()`` costs more than the increment on the hot path.
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._call_children: dict[tuple[str, str], Any] = {}
        self._spend_children: dict[str, tuple[Any, Any, Any]] = {}

    def observe_request(self, model: str, status: int, seconds: float) -> None:
        key = (model, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(model, str(status)), self.request_seconds.labels(model))
        children[0].inc()
        children[1].observe(seconds)

    def observe_upstream(self, model: str, outcome: str, usage: Usage | None = None,
                         cost_usd: float = 0.0) -> None:
        key = (model, outcome)
        calls = self._call_children.get(key)
        if calls is None:
            calls = self._call_children[key] = self.upstream_calls.labels(model, outcome)
        calls.inc()
        if usage is None and cost_usd <= 0:
            return
        spend = self._spend_children.get(model)
        if spend is None:
            spend = self._spend_children[model] = (
                self.tokens.labels(model, "prompt"), self.tokens.labels(model, "completion"),
                self.cost.labels(model))
        if usage is not None:
            if usage.prompt_tokens:
                spend[0].inc(usage.prompt_tokens)
            if usage.completion_tokens:
                spend[1].inc(usage.completion_tokens)
        if cost_usd > 0:
            spend[2].inc(cost_usd)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything on :attr:`registry`."""
        return generate_latest(self.registry)
