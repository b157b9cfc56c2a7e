"""Tool calls: when the simulated model calls a function, and with what arguments (no HTTP here).

The decision is deterministic (see :func:`choose_tool`):

1. no ``tools``, ``tool_choice: "none"``, or the last message is a tool result (role ``tool`` or
   ``function``) -> no call, a text answer (so a two-turn tool loop ends);
2. ``tool_choice`` names a function -> that function;
3. ``"required"`` -> the first tool *mentioned* in the last user message, else the first tool;
4. ``"auto"`` -> the first tool mentioned in the last user message, else a text answer.

A tool is mentioned when its name, with ``_`` read as a space and case ignored, occurs in the
message (also read with ``_`` as a space) as whole words: ``get_weather`` is mentioned by "Get
weather for Paris" and by "call get_weather", not by "forget weathering".

Arguments (:func:`call_arguments`): a JSON object with each of ``parameters.properties`` filled
by its type (the first non-"null" one of a list): string -> the last user message cut to 40
characters, integer / number -> 0, boolean -> false, array -> [], object -> {}, else null. The
call id is ``call_`` and 24 hex digits from the request's rng (only drawn when a tool is called,
so answers without a call take the same random numbers as requests without tools).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from proxy.sim.protocol import ChatRequest, Tool

__all__ = ["ToolCall", "choose_tool", "call_arguments", "new_call"]

_BY_TYPE: dict[str, Any] = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
_ARG_CHARS = 40


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str   # a JSON object, as OpenAI sends it

    def as_dict(self, arguments: str | None = None) -> dict[str, Any]:
        """The wire form of the call (``arguments`` overrides them, e.g. "" in a stream's head)."""
        args = self.arguments if arguments is None else arguments
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": args}}


def _last_user(req: ChatRequest) -> str:
    return next((m["content"] for m in reversed(req.messages) if m["role"] == "user"), "")


def _mentions(text: str, name: str) -> bool:
    words = re.escape(name.replace("_", " ").lower())
    return re.search(rf"(?<!\w){words}(?!\w)", text.replace("_", " ").lower()) is not None


def choose_tool(req: ChatRequest) -> Tool | None:
    """The tool this request's answer calls, or None for a text answer (module docstring)."""
    if not req.tools or req.tool_choice == "none" or req.messages[-1]["role"] in ("tool", "function"):
        return None
    if req.tool_choice == "function":
        return next(t for t in req.tools if t.name == req.tool_name)
    last = _last_user(req)
    mentioned = next((t for t in req.tools if _mentions(last, t.name)), None)
    if mentioned is None and req.tool_choice == "required":
        return req.tools[0]
    return mentioned


def call_arguments(tool: Tool, last_user: str) -> str:
    """The JSON arguments of a call to ``tool`` (every property filled by its type)."""
    props = tool.parameters.get("properties") or {}
    args: dict[str, Any] = {}
    for key, schema in props.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind == "string":
            args[key] = last_user[:_ARG_CHARS]
        else:
            args[key] = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    return json.dumps(args)


def new_call(tool: Tool, req: ChatRequest, rng: np.random.Generator) -> ToolCall:
    """A call to ``tool`` with a fresh id drawn from ``rng``."""
    return ToolCall("call_" + rng.bytes(12).hex(), tool.name, call_arguments(tool, _last_user(req)))
