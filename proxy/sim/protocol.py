"""OpenAI chat-completions wire format for the simulator: request validation, response objects.

:func:`parse_chat_request` validates a decoded JSON body into a :class:`ChatRequest` or raises
:class:`BadRequest` (rendered as a 400 OpenAI error body by the server).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = ["BadRequest", "ChatRequest", "parse_chat_request", "error_body", "completion_object",
           "chunk_object", "usage_object"]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class BadRequest(ValueError):
    """An invalid request; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict[str, Any], ...]   # content normalised to str
    model: str
    temperature: float
    top_p: float
    n: int
    max_tokens: int | None
    stop: tuple[str, ...]
    seed: int | None
    stream: bool
    include_usage: bool

    def content_key(self) -> int:
        """A hash of what determines the sampled text (for seeded reproducibility)."""
        blob = json.dumps([self.messages, self.model, self.temperature, self.top_p, self.n,
                           self.max_tokens, self.stop], sort_keys=True)
        return zlib.crc32(blob.encode())


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    val = body.get(key)
    if val is None:
        return default
    if isinstance(val, bool) or not isinstance(val, int | float) or not lo <= val <= hi:
        raise BadRequest(f"'{key}' must be a number in [{lo}, {hi}]", key)
    return float(val)


def _int(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    val = body.get(key)
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, int) or not lo <= val <= hi:
        raise BadRequest(f"'{key}' must be an integer in [{lo}, {hi}]", key)
    return val


def _content(msg: dict[str, Any], i: int) -> str:
    content = msg.get("content")
    if content is None:
        if msg.get("role") in ("assistant", "tool", "function"):
            return ""
        raise BadRequest(f"messages[{i}].content is required", f"messages[{i}].content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"messages[{i}].content parts must be objects with a 'type'",
                                 f"messages[{i}].content")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise BadRequest(f"messages[{i}].content text part needs 'text'",
                                     f"messages[{i}].content")
                parts.append(part["text"])
        return "\n".join(parts)
    raise BadRequest(f"messages[{i}].content must be a string or a list", f"messages[{i}].content")


def parse_chat_request(body: Any, max_n: int = 128) -> ChatRequest:
    """Validate a chat-completions body."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("'messages' must be a non-empty list", "messages")
    messages = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m["role"] not in ROLES:
            raise BadRequest(f"messages[{i}] must be an object with a valid 'role'", f"messages[{i}]")
        messages.append({"role": m["role"], "content": _content(m, i)})
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string", "model")
    n = _int(body, "n", 1, max_n) or 1
    max_tokens = _int(body, "max_completion_tokens", 1, 1 << 20)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, 1 << 20)
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop):
        stops = tuple(stop)
    else:
        raise BadRequest("'stop' must be a string or a list of up to 4 strings", "stop")
    seed = _int(body, "seed", -(1 << 63), (1 << 64) - 1)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", "stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    include_usage = bool(opts and opts.get("include_usage")) and stream
    return ChatRequest(tuple(messages), model, _number(body, "temperature", 1.0, 0.0, 2.0),
                       _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0, n, max_tokens, stops, seed,
                       stream, include_usage)


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_object(cid: str, created: int, model: str, texts: list[str], reasons: list[str],
                      usage: dict[str, int], seed_fp: str) -> dict[str, Any]:
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": seed_fp,
        "choices": [{"index": i, "message": {"role": "assistant", "content": t},
                     "logprobs": None, "finish_reason": r}
                    for i, (t, r) in enumerate(zip(texts, reasons))],
        "usage": usage,
    }


def chunk_object(cid: str, created: int, model: str, choices: list[dict[str, Any]],
                 usage: dict[str, int] | None = None, with_usage: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": "fp_sim", "choices": choices}
    if with_usage:
        obj["usage"] = usage
    return obj
