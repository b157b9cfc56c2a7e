"""Prometheus metrics on a registry owned by each app (never the global one: tests build many).

Other parts (policies, pipeline) register their own collectors on :attr:`Metrics.registry`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("iapo_requests", "Client requests", ["model", "status"], registry=r)
        self.request_seconds = Histogram("iapo_request_seconds", "Client request latency",
                                         ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_calls = Counter("iapo_upstream_calls", "Upstream calls",
                                      ["model", "outcome"], registry=r)
        self.tokens = Counter("iapo_tokens", "Upstream tokens", ["model", "kind"], registry=r)
        self.cost = Counter("iapo_cost_usd", "Upstream cost in US dollars", ["model"], registry=r)

    def observe_request(self, model: str, status: int, seconds: float) -> None:
        self.requests.labels(model, str(status)).inc()
        self.request_seconds.labels(model).observe(seconds)

    def observe_upstream(self, model: str, outcome: str, usage: Usage | None = None,
                         cost_usd: float = 0.0) -> None:
        self.upstream_calls.labels(model, outcome).inc()
        if usage is not None:
            if usage.prompt_tokens:
                self.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
            if usage.completion_tokens:
                self.tokens.labels(model, "completion").inc(usage.completion_tokens)
        if cost_usd > 0:
            self.cost.labels(model).inc(cost_usd)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything on :attr:`registry`."""
        return generate_latest(self.registry)
