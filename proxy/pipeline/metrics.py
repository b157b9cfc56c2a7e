"""The pipeline's Prometheus collectors, on a registry the app owns.

- ``iapo_samples_total{task,outcome}`` — samples ``completed`` / ``failed`` / ``cancelled``
  (sent, then cancelled) / ``unsent`` (never sent: waves or an early stop before sending);
- ``iapo_samples_saved_total{task}`` — samples majority-vote early stopping did not complete
  (cancelled in flight or never sent);
- ``iapo_pipeline_n{task}`` — histogram of the N the policy chose;
- ``iapo_rewrite_failures_total{prompt}`` — prompter failures that fell back to the original;
- ``iapo_judge_errors_total{scorer}`` — judge replies with no usable score;
- ``iapo_pipeline_cost_usd_total{task}`` — dollars per task (samples, prompter and judge calls).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["PipelineMetrics"]

_N_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.samples = Counter("iapo_samples", "Samples by outcome", ["task", "outcome"], registry=r)
        self.saved = Counter("iapo_samples_saved", "Samples early stopping did not complete (cancelled or never sent)", ["task"],
                             registry=r)
        self.n = Histogram("iapo_pipeline_n", "Samples per choice chosen by the policy", ["task"],
                           buckets=_N_BUCKETS, registry=r)
        self.rewrite_failures = Counter("iapo_rewrite_failures", "Prompter failures", ["prompt"],
                                        registry=r)
        self.judge_errors = Counter("iapo_judge_errors", "Judge replies without a score",
                                    ["scorer"], registry=r)
        self.cost = Counter("iapo_pipeline_cost_usd", "Pipeline cost in US dollars", ["task"],
                            registry=r)

    def observe(self, task: str, n: int, completed: int, failed: int, cancelled: int, saved: int,
                cost_usd: float, unsent: int = 0) -> None:
        self.n.labels(task).observe(n)
        for outcome, count in (("completed", completed), ("failed", failed),
                               ("cancelled", cancelled), ("unsent", unsent)):
            if count:
                self.samples.labels(task, outcome).inc(count)
        if saved:
            self.saved.labels(task).inc(saved)
        if cost_usd > 0:
            self.cost.labels(task).inc(cost_usd)
