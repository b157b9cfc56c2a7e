"""OpenAI chat-completions wire format: request validation and response builders.

:func:`parse_chat_request` turns a decoded JSON body into a frozen :class:`ChatRequest` or raises
:class:`proxy.errors.InvalidRequest` naming the offending ``param``. Unknown top-level fields are
kept in ``extra`` and passed through to the upstream; the proxy's own ``iapo`` object is kept
apart in ``hints`` and never forwarded (:func:`to_upstream`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.errors import InvalidRequest, shown

__all__ = [
    "ROLES",
    "ChatRequest",
    "chunk",
    "completion_body",
    "new_id",
    "parse_chat_request",
    "to_upstream",
]

ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
_ROLE_LIST = "system, user, assistant, tool, developer, function"
_KNOWN = frozenset({"model", "messages", "temperature", "top_p", "max_tokens",
                    "max_completion_tokens", "stop", "n", "seed", "user", "stream",
                    "stream_options", "iapo"})
_MAX_TOKENS = (1 << 31) - 1  # a 32-bit int: what inference servers parse it into
_FORWARDED = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "user")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat-completions request. ``None`` means "not sent" (upstream default)."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    seed: int | None = None
    user: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.get("include_usage"))


def _number(body: Mapping[str, Any], key: str, lo: float, hi: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{key}' must be a number", param=key)
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{key}' must be between {lo:g} and {hi:g}", param=key)
    return float(value)


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{key}' must be an integer", param=key)
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise InvalidRequest(f"'{key}' must be {bound}", param=key)
    return value


def _message(m: Any, i: int) -> dict[str, Any]:
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise InvalidRequest(f"'{param}' must be an object", param=param)
    role = m.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequest(f"'{param}.role' must be one of {_ROLE_LIST} (got {shown(role)})",
                             param=f"{param}.role")
    content = m.get("content")
    if isinstance(content, str):
        return m
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise InvalidRequest(f"'{param}.content[{j}]' must be an object with a 'type'",
                                     param=f"{param}.content[{j}]")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise InvalidRequest(f"'{param}.content[{j}].text' must be a string",
                                     param=f"{param}.content[{j}].text")
        return m
    if content is None and role == "assistant" and any(
            m.get(k) for k in ("tool_calls", "function_call", "refusal", "audio")):
        return m  # a reply replayed into the history: a tool call, a refusal, an audio reply
    raise InvalidRequest(f"'{param}.content' must be a string or a list of content parts",
                         param=f"{param}.content")


def parse_chat_request(body: Any, *, max_n: int, max_tokens: int | None = None) -> ChatRequest:
    """Validate a decoded chat-completions body; raises :class:`InvalidRequest` on any problem.
    ``max_tokens`` (``server.max_tokens``) bounds ``max_tokens`` / ``max_completion_tokens`` and
    is sent as ``max_tokens`` when the request names neither."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages")
    messages = [_message(m, i) for i, m in enumerate(messages)]
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop)):
        raise InvalidRequest("'stop' must be a string or a list of up to 4 non-empty strings",
                             param="stop")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be a string", param="user")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        if not isinstance(opts.get("include_usage", False), bool):
            raise InvalidRequest("'stream_options.include_usage' must be a boolean",
                                 param="stream_options.include_usage")
    hints = body.get("iapo")
    if hints is not None and not isinstance(hints, dict):
        raise InvalidRequest("'iapo' must be an object", param="iapo")
    tokens = _int(body, "max_tokens", 1, max_tokens or _MAX_TOKENS)
    completion_tokens = _int(body, "max_completion_tokens", 1, max_tokens or _MAX_TOKENS)
    if tokens is None and completion_tokens is None:
        tokens = max_tokens
    return ChatRequest(
        model=model, messages=messages,
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        max_tokens=tokens, max_completion_tokens=completion_tokens,
        stop=stop, n=_int(body, "n", 1, max_n) or 1, seed=_int(body, "seed", -(1 << 63), (1 << 64) - 1),
        user=user, stream=bool(stream), stream_options=opts, hints=hints or {},
        extra={k: v for k, v in body.items() if k not in _KNOWN},
    )


def to_upstream(req: ChatRequest, upstream_model_name: str, *,
                messages: list[dict[str, Any]] | None = None, single: bool = False) -> dict[str, Any]:
    """The body sent upstream: the request's fields and pass-through extras, never ``iapo``;
    ``messages`` replace the request's (a rewritten prompt); ``single`` asks for one
    non-streamed choice (no ``n``, ``stream`` nor ``stream_options``)."""
    body: dict[str, Any] = dict(req.extra)
    body["model"] = upstream_model_name
    body["messages"] = req.messages if messages is None else messages
    for key in _FORWARDED:
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if single:
        return body
    if req.n != 1:
        body["n"] = req.n
    if req.stream:
        body["stream"] = True
        if req.stream_options is not None:
            body["stream_options"] = req.stream_options
    return body


def new_id() -> str:
    """A fresh completion id, ``chatcmpl-<32 random hex digits>`` (``os.urandom``: a fifth of
    ``uuid4``'s cost)."""
    return f"chatcmpl-{os.urandom(16).hex()}"


def completion_body(model: str, texts: Sequence[str], usage: Mapping[str, int], *,
                    finish_reasons: Sequence[str] | None = None, cid: str | None = None,
                    created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object with one assistant choice per text."""
    reasons = finish_reasons or ["stop"] * len(texts)
    return {
        "id": cid or new_id(), "object": "chat.completion",
        "created": int(time.time()) if created is None else created, "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": reason}
                    for i, (text, reason) in enumerate(zip(texts, reasons, strict=True))],
        "usage": dict(usage),
    }


def chunk(cid: str, created: int, model: str, choices: list[dict[str, Any]],
          usage: Mapping[str, int] | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object (``usage`` only on the final usage chunk)."""
    obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": choices}
    if usage is not None:
        obj["usage"] = dict(usage)
    return obj
