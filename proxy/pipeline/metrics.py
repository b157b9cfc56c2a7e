"""The pipeline's Prometheus collectors, on a registry the app owns.

Every fan-out run (one per returned choice) and every pass-through stream is counted once when
it ends, whether the request succeeds, fails (e.g. a 429 or 502 to the client) or is cancelled
(client disconnect): its samples by outcome, its N and its cost.

- ``iapo_samples_total{task,outcome}`` — samples ``completed`` / ``failed`` / ``cancelled``
  (sent, then cancelled) / ``unsent`` (never sent: waves or an early stop before sending);
- ``iapo_samples_saved_total{task}`` — samples majority-vote early stopping did not complete
  (cancelled in flight or never sent);
- ``iapo_pipeline_n{task}`` — histogram of the N the policy chose;
- ``iapo_rewrite_failures_total{prompt}`` — prompter failures that fell back to the original;
- ``iapo_judge_errors_total{scorer}`` — judge replies with no usable score;
- ``iapo_pipeline_cost_usd_total{task}`` — dollars per task (samples, prompter and judge calls;
  a pass-through stream's when the upstream reports usage).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from proxy.counters import LoopCounter, LoopHistogram

__all__ = ["PipelineMetrics"]

_N_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_OUTCOMES = ("completed", "failed", "cancelled", "unsent")


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.samples = LoopCounter("iapo_samples", "Samples by outcome", ["task", "outcome"], r)
        self.saved = LoopCounter("iapo_samples_saved",
                                 "Samples early stopping did not complete (cancelled or never sent)",
                                 ["task"], r)
        self.n = LoopHistogram("iapo_pipeline_n", "Samples per choice chosen by the policy",
                               ["task"], r, buckets=_N_BUCKETS)
        self.rewrite_failures = LoopCounter("iapo_rewrite_failures", "Prompter failures",
                                            ["prompt"], r)
        self.judge_errors = LoopCounter("iapo_judge_errors", "Judge replies without a score",
                                        ["scorer"], r)
        self.cost = LoopCounter("iapo_pipeline_cost_usd", "Pipeline cost in US dollars", ["task"],
                                r)
        # Labelled children per task, cached: ``labels()`` costs more than the update itself.
        self._task_children: dict[str, tuple[Any, dict[str, Any], Any, Any]] = {}

    def _children(self, task: str) -> tuple[Any, dict[str, Any], Any, Any]:
        """``(n, {outcome: samples}, saved, cost)`` children of ``task``."""
        children = self._task_children.get(task)
        if children is None:
            children = self._task_children[task] = (
                self.n.labels(task), {o: self.samples.labels(task, o) for o in _OUTCOMES},
                self.saved.labels(task), self.cost.labels(task))
        return children

    def add_cost(self, task: str, cost_usd: float) -> None:
        """Add ``cost_usd`` (if positive) to ``task``'s pipeline cost."""
        if cost_usd > 0:
            self._children(task)[3].inc(cost_usd)

    def observe_one(self, task: str, outcome: str, cost_usd: float) -> None:
        """A one-sample run (a pass-through stream) that ended with ``outcome``."""
        n_child, samples, _, cost_child = self._children(task)
        n_child.observe(1)
        samples[outcome].inc()
        if cost_usd > 0:
            cost_child.inc(cost_usd)

    def observe(self, task: str, n: int, completed: int, failed: int, cancelled: int, saved: int,
                cost_usd: float, unsent: int = 0) -> None:
        """One ended fan-out run of ``n`` samples."""
        n_child, samples, saved_child, cost_child = self._children(task)
        n_child.observe(n)
        for outcome, count in zip(_OUTCOMES, (completed, failed, cancelled, unsent)):
            if count:
                samples[outcome].inc(count)
        if saved:
            saved_child.inc(saved)
        if cost_usd > 0:
            cost_child.inc(cost_usd)
