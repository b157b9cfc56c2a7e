"""Upstream models: one :class:`Upstream` interface, a direct OpenAI-compatible HTTP path and a
litellm path for every other provider."""

from proxy.upstream.base import Completion, Upstream, Usage

__all__ = ["Completion", "Upstream", "Usage"]
