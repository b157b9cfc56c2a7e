"""OpenAI chat-completions wire format for the simulator: request validation, response objects.

:func:`parse_chat_request` validates a decoded JSON body into a :class:`ChatRequest` or raises
:class:`BadRequest` (rendered as a 400 OpenAI error body by the server).

Tools: ``tools`` is a non-empty list of ``{"type": "function", "function": {"name", "description"?,
"parameters"?}}`` (names as OpenAI's, ``[a-zA-Z0-9_-]{1,64}``, distinct; ``parameters`` an object
whose ``properties``, if any, is an object). ``tool_choice`` is ``"none"``, ``"auto"`` (the default
with tools), ``"required"`` or ``{"type": "function", "function": {"name": NAME}}`` naming one of
the tools; it is an error without ``tools``. The legacy ``functions`` / ``function_call`` are
ignored (their answers have another shape). Tools do not enter :meth:`ChatRequest.content_key`.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = ["BadRequest", "ChatRequest", "Tool", "parse_chat_request", "error_body",
           "completion_object", "chunk_object", "usage_object"]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


class BadRequest(ValueError):
    """An invalid request; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON schema (``{}`` if none)."""

    name: str
    parameters: dict[str, Any]


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
    tools: tuple[Tool, ...] = ()
    tool_choice: str = "none"       # "none" | "auto" | "required" | "function" (named)
    tool_name: str | None = None    # the function a "function" tool_choice names

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


def _tool(t: Any, i: int, seen: set[str]) -> Tool:
    at = f"tools[{i}]"
    if not isinstance(t, dict):
        raise BadRequest(f"{at} must be an object", at)
    if t.get("type") != "function":
        raise BadRequest(f"{at}.type must be 'function'", f"{at}.type")
    fn = t.get("function")
    if not isinstance(fn, dict):
        raise BadRequest(f"{at}.function must be an object", f"{at}.function")
    name = fn.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name) or name in seen:
        raise BadRequest(f"{at}.function.name must be a distinct name of 1-64 letters, digits, "
                         "'_' or '-'", f"{at}.function.name")
    if fn.get("description") is not None and not isinstance(fn["description"], str):
        raise BadRequest(f"{at}.function.description must be a string", f"{at}.function.description")
    params = {} if fn.get("parameters") is None else fn["parameters"]
    props = params.get("properties") if isinstance(params, dict) else ()
    if props is not None and not isinstance(props, dict):
        raise BadRequest(f"{at}.function.parameters must be a JSON schema object",
                         f"{at}.function.parameters")
    seen.add(name)
    return Tool(name, params)


def _tools(body: dict[str, Any]) -> tuple[tuple[Tool, ...], str, str | None]:
    """``tools``, ``tool_choice`` and the named function of a body (see the module docstring)."""
    raw, choice = body.get("tools"), body.get("tool_choice")
    if raw is None:
        if choice is not None:
            raise BadRequest("'tool_choice' is only allowed when 'tools' are given", "tool_choice")
        return (), "none", None
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'tools' must be a non-empty list", "tools")
    seen: set[str] = set()
    tools = tuple(_tool(t, i, seen) for i, t in enumerate(raw))
    if choice is None or choice in ("none", "auto", "required"):
        return tools, choice or "auto", None
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) and choice.get("type") == "function" else None
    if not isinstance(name, str):
        raise BadRequest("'tool_choice' must be 'none', 'auto', 'required' or "
                         "{\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice")
    if name not in seen:
        raise BadRequest(f"'tool_choice' names an unknown function {name[:64]!r}", "tool_choice")
    return tools, "function", name


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
                       stream, include_usage, *_tools(body))


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _message(text: str, tool_call: dict[str, Any] | None) -> dict[str, Any]:
    if tool_call is None:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": None, "tool_calls": [tool_call]}


def completion_object(cid: str, created: int, model: str, texts: list[str], reasons: list[str],
                      usage: dict[str, int], seed_fp: str,
                      tool_calls: list[dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """A ``chat.completion``; choice i calls ``tool_calls[i]`` (content null) where that is set."""
    calls = tool_calls or [None] * len(texts)
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": seed_fp,
        "choices": [{"index": i, "message": _message(t, c), "logprobs": None, "finish_reason": r}
                    for i, (t, r, c) in enumerate(zip(texts, reasons, calls))],
        "usage": usage,
    }


def chunk_object(cid: str, created: int, model: str, choices: list[dict[str, Any]],
                 usage: dict[str, int] | None = None, with_usage: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": "fp_sim", "choices": choices}
    if with_usage:
        obj["usage"] = usage
    return obj
