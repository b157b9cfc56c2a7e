"""Upstream models: one :class:`Upstream` interface, a direct OpenAI-compatible HTTP path and a
litellm path for every other provider (:class:`UpstreamRouter` picks per model)."""

from proxy.upstream.base import Completion, Upstream, UpstreamRateLimited, Usage

__all__ = ["Completion", "Upstream", "UpstreamRateLimited", "Usage"]
