"""The interface the rest of the proxy depends on to reach a model.

A request is an OpenAI chat-completions body (a dict) that the proxy already validated, with the
proxy's own ``iapo`` namespace removed; ``model`` is the virtual model's :class:`ModelConfig`.
Implementations enforce the call's limit themselves with asyncio, the smaller of the caller's
``timeout_s`` (e.g. what is left of a sample's time) and ``model.timeout_s``
(:func:`call_timeout`), and raise only :class:`proxy.errors.UpstreamError` /
:class:`proxy.errors.UpstreamTimeout`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.config import ModelConfig
from proxy.errors import UpstreamError

__all__ = ["Completion", "Upstream", "UpstreamRateLimited", "Usage", "call_timeout", "config_cost",
           "credentials_rejected", "parse_choice", "usage_of"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens)

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True, slots=True)
class Completion:
    """One upstream response: the OpenAI response body as received, with usage and cost."""

    body: Mapping[str, Any]
    usage: Usage
    cost_usd: float

    @property
    def texts(self) -> list[str]:
        """The text of each choice, in choice order ("" where there is none or it is malformed;
        see :func:`parse_choice`)."""
        return [(parse_choice(c) or ("", {}))[0] for c in self.body.get("choices", [])]


def parse_choice(choice: object) -> tuple[str, Mapping[str, Any]] | None:
    """``(text, choice)`` for one upstream choice, or None when it is malformed.

    The text is the message's ``content`` ("" when the message or its content is missing or
    null); content given as a list of parts (``[{"type": "text", "text": ...}]``, as some
    OpenAI-compatible providers answer) is joined from its text parts, and the choice comes back
    with that text as its content. Malformed: a choice or message that is not an object, content
    neither a string nor a list of objects, ``tool_calls`` not a list of objects.
    """
    if not isinstance(choice, dict):  # JSON objects decode to dicts (an ABC check costs 10x)
        return None
    message = choice.get("message")
    if message is None:
        return "", choice
    if not isinstance(message, dict):
        return None
    calls = message.get("tool_calls")
    if calls is not None and not (isinstance(calls, list)
                                  and all(isinstance(c, dict) for c in calls)):
        return None
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or "", choice
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        return None
    text = "".join(p["text"] for p in content
                   if p.get("type") == "text" and isinstance(p.get("text"), str))
    return text, {**choice, "message": {**message, "content": text}}


class Upstream(Protocol):
    async def complete(self, model: ModelConfig, request: Mapping[str, Any], *,
                       timeout_s: float | None = None) -> Completion:
        """Send a non-streaming request within :func:`call_timeout` (``timeout_s`` can only
        shorten ``model.timeout_s``)."""
        ...

    def stream(self, model: ModelConfig, request: Mapping[str, Any], *,
               timeout_s: float | None = None) -> AsyncIterator[Mapping[str, Any]]:
        """Stream a request; yields OpenAI chunk objects as the upstream sends them.
        :func:`call_timeout` bounds the wait for each chunk (time to first token, then
        between chunks)."""
        ...

    def cost(self, model: ModelConfig, usage: Usage) -> float:
        """Dollar cost of ``usage`` on ``model`` (config price, else litellm's map, else 0)."""
        ...

    async def ready(self, model: ModelConfig) -> bool:
        """Whether the upstream answers (used by ``GET /ready``)."""
        ...

    async def close(self) -> None:
        ...


class UpstreamRateLimited(UpstreamError):
    """The upstream answered 429; its ``retry-after`` header is kept in ``headers``."""

    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


def call_timeout(model: ModelConfig, timeout_s: float | None) -> float:
    """The limit of one call: ``model.timeout_s``, or the caller's ``timeout_s`` if shorter."""
    return model.timeout_s if timeout_s is None else min(timeout_s, model.timeout_s)


def credentials_rejected(model: ModelConfig, status: int) -> UpstreamError:
    """The upstream answered 401/403: it refused the *proxy's* key for ``model``, so the client
    gets a 502 naming the env var to check (a 401 would make it blame its own key). The
    upstream's message is left out: it may echo part of the key."""
    env = model.api_key_env
    if env is None:
        hint = "the model has no api_key_env"
    else:
        hint = f"check env var {env}" + ("" if os.environ.get(env) else ", which is not set")
    return UpstreamError(f"upstream rejected the proxy's credentials for model '{model.name}' "
                         f"(HTTP {status}); {hint}", code=f"upstream_{status}")


def config_cost(model: ModelConfig, usage: Usage) -> float | None:
    """Dollar cost of ``usage`` from the model's configured prices, or None if it has none."""
    if model.input_cost_per_token is None and model.output_cost_per_token is None:
        return None
    return (usage.prompt_tokens * (model.input_cost_per_token or 0.0)
            + usage.completion_tokens * (model.output_cost_per_token or 0.0))


def usage_of(body: Mapping[str, Any] | None) -> Usage:
    """The ``usage`` of an OpenAI response or chunk (zeros where it is missing or odd)."""
    raw = body.get("usage") if body else None
    if not isinstance(raw, dict):
        return Usage()
    p, c = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return Usage(p if isinstance(p, int) else 0, c if isinstance(c, int) else 0)
