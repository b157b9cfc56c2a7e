"""The inference-aware request pipeline: classify → weights → action → rewrite → fan out →
aggregate. Plain async Python with no HTTP framework; :class:`PipelineService` is the entry."""
