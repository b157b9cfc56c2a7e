"""Turn a validated :class:`ChatRequest` into finished choices (no HTTP here).

Tokens are whitespace-separated words (``model.count_tokens``); a choice is cut at the first
``stop`` string (finish_reason "stop") and then at ``max_tokens`` (finish_reason "length"). Its
``pieces`` are the streamed deltas, one token each, whose concatenation is the text.

A request whose answer calls a tool (:func:`proxy.sim.tools.choose_tool`) gives ``n`` choices
calling that tool, with finish_reason "tool_calls", empty text and ``pieces`` (the tokens) taken
from the call's JSON arguments the same way; ``stop`` and ``max_tokens`` do not apply to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from proxy.sim.model import SimModel, count_tokens
from proxy.sim.protocol import ChatRequest
from proxy.sim.tools import ToolCall, choose_tool, new_call

__all__ = ["Choice", "generate", "prompt_tokens", "request_rng", "finish"]

_PIECE = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str
    pieces: tuple[str, ...]
    tool_call: ToolCall | None = None   # then ``pieces`` split its arguments, ``text`` is ""

    @property
    def tokens(self) -> int:
        return len(self.pieces)


def finish(text: str, max_tokens: int | None, stops: tuple[str, ...]) -> Choice:
    """Apply ``stop`` and ``max_tokens`` to a generated text."""
    reason = "stop"
    if stops:
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
    pieces = _PIECE.findall(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        pieces = pieces[:max_tokens]
        text = "".join(pieces)
        reason = "length"
    return Choice(text, reason, tuple(pieces))


def prompt_tokens(req: ChatRequest) -> int:
    """Prompt tokens: words of every message plus 4 per message of framing."""
    return sum(count_tokens(m["content"]) + 4 for m in req.messages) + 2


def request_rng(req: ChatRequest, shared: np.random.Generator) -> np.random.Generator:
    """A generator of its own for a seeded request (same seed + body -> same text), else shared."""
    if req.seed is None:
        return shared
    return np.random.default_rng([req.seed & ((1 << 64) - 1), req.content_key()])


def generate(model: SimModel, req: ChatRequest, rng: np.random.Generator) -> list[Choice]:
    """The request's ``n`` choices."""
    tool = choose_tool(req)
    if tool is not None:
        calls = [new_call(tool, req, rng) for _ in range(req.n)]
        return [Choice("", "tool_calls", tuple(_PIECE.findall(c.arguments)), c) for c in calls]
    texts = model.respond(req.messages, req.temperature, rng, n=req.n, top_p=req.top_p)
    return [finish(t, req.max_tokens, req.stop) for t in texts]
