"""Apply a prompt from the library to a conversation.

Order: ``rewrite`` (a prompter model rewrites the last user message with the meta-prompt; on any
failure or timeout the original is kept and ``rewrite_failed`` is set), then ``template``
(``{input}`` = the last user message) or ``prefix``/``suffix`` on the last user message, then
few-shot ``examples`` inserted as user/assistant turns just before the last user message, then
``system`` put first (merged with an existing first system message: the prompt's text, a blank
line, the caller's text). Every other message is passed through unchanged. Multi-part (list)
user content is rewritten in its text parts only when it is a single text part; otherwise the
message is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proxy.config import Config, PromptConfig
from proxy.errors import UpstreamError
from proxy.upstream.base import Upstream, Usage

__all__ = ["Rewritten", "apply_prompt", "wrap_text"]

log = logging.getLogger(__name__)
Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rewritten:
    """The new messages, the prompter's usage and cost, and whether its rewrite failed."""

    messages: list[Message]
    usage: Usage = Usage()
    cost_usd: float = 0.0
    rewrite_failed: bool = False
    rewrite_error: str | None = None


def wrap_text(prompt: PromptConfig, text: str) -> str:
    """The last user message's text after ``template`` or ``prefix``/``suffix``."""
    if prompt.template is not None:
        return prompt.template.replace("{input}", text)
    return f"{prompt.prefix or ''}{text}{prompt.suffix or ''}"


def _last_user(messages: Sequence[Message]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1)
                 if messages[i].get("role") == "user"), None)


def _text_of(msg: Mapping[str, Any]) -> str | None:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if (isinstance(content, list) and len(content) == 1 and isinstance(content[0], Mapping)
            and content[0].get("type") == "text"):
        return str(content[0].get("text", ""))
    return None


async def _rewrite(prompt: PromptConfig, text: str, config: Config,
                   upstream: Upstream) -> tuple[str, Usage, float]:
    assert prompt.rewrite is not None
    model = config.model(prompt.rewrite.model)
    if model is None:
        raise UpstreamError(f"prompter model '{prompt.rewrite.model}' is not configured")
    body = {"model": model.name, "messages": [
        {"role": "user", "content": prompt.rewrite.meta_prompt.replace("{input}", text)}]}
    timeout = prompt.rewrite.timeout_s
    async with asyncio.timeout(timeout):
        done = await upstream.complete(model, body, timeout_s=timeout)
    texts = done.texts
    new = texts[0].strip() if texts else ""
    if not new:
        raise UpstreamError("prompter returned an empty rewrite")
    return new, done.usage, done.cost_usd


async def apply_prompt(prompt: PromptConfig, messages: Sequence[Mapping[str, Any]], config: Config,
                       upstream: Upstream) -> Rewritten:
    """``messages`` rewritten with ``prompt`` (see the module docstring); never raises for a
    prompter failure."""
    if not (prompt.system or prompt.prefix or prompt.suffix or prompt.template
            or prompt.examples or prompt.rewrite):  # e.g. `plain`: the conversation as sent
        return Rewritten(list(messages), Usage(), 0.0, False, None)
    out: list[Message] = [dict(m) for m in messages]
    idx = _last_user(out)
    usage, cost, failed, error = Usage(), 0.0, False, None
    if idx is not None:
        text = _text_of(out[idx])
        if text is not None:
            if prompt.rewrite is not None:
                try:
                    text, usage, cost = await _rewrite(prompt, text, config, upstream)
                except (UpstreamError, TimeoutError) as exc:
                    failed = True
                    error = "timeout" if isinstance(exc, TimeoutError) else str(exc)
                    log.warning("prompt %s: rewrite failed (%s); keeping the original", prompt.id,
                                error)
            out[idx] = {**out[idx], "content": wrap_text(prompt, text)}
        if prompt.examples:
            shots: list[Message] = []
            for q, a in prompt.examples:
                shots += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            out[idx:idx] = shots
    if prompt.system:
        if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
            out[0] = {**out[0], "content": f"{prompt.system}\n\n{out[0]['content']}"}
        else:
            out.insert(0, {"role": "system", "content": prompt.system})
    return Rewritten(out, usage, cost, failed, error)
