"""The simulated model's response function: pure, no I/O, all randomness from the caller's rng.

A request is first classified by its last user message:

1. *prompter*: "Rewrite the following request ..." -> the request plus one or two added
   instruction phrases (:func:`proxy.sim.roles.prompter_reply`);
2. *judge*: "Rate the response ... on a scale of 1 to 10" -> "Score: k" from the response's
   true quality plus noise, sometimes junk (:func:`proxy.sim.roles.judge_reply`);
3. *task item*: a known item's question occurs in the user messages (:class:`TaskIndex`), or
   the last one asks for some arithmetic (an item made on the spot,
   :func:`proxy.sim.arith.arithmetic_item`) -> an answer whose correctness depends on the
   prompt's features;
4. anything else -> a generic reply that echoes the topic words.

For task items (math, multiple choice) the features of the system + user text (see
:mod:`proxy.sim.features`) give p_correct = sigmoid(BASE + skill(features) - slope * difficulty
+ quirk(item)), a diversity of errors (consistent for direct/persona prompts, spread out for
step-by-step ones) and a rate of unparsable replies (highest for the plain prompt). Temperature
T tempers the outcome distribution (power 1/T; T = 0 is deterministic). With the shipped
config's prompts on the math set, ``expert_direct`` is the best prompt at one sample and ``cot``
the better one under majority voting of 16 (tests/sim/test_sim_prompt_scale.py checks both).
Measured over the 600 math items at temperature 1 (single-sample accuracy / majority of 16):
expert_direct 0.67 / 0.76, cot 0.51 / 0.84, few-shot 0.63 / 0.92, plain 0.46 / 0.68
(majority of 9: 0.66), direct 0.53 / 0.60.

Summaries: each key point is mentioned with probability
q = sigmoid(SUM_BASE + 0.5 expert + 0.4 reasoning + 0.3 few-shot - 1.5 difficulty), tempered
like the above; brief/direct prompts mention at most two. Quality = fraction covered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from proxy.sim import features as ft
from proxy.sim import render, roles
from proxy.sim.arith import arithmetic_item
from proxy.sim.tasks import TaskIndex, TaskItem

__all__ = ["SimModel", "count_tokens"]

SUM_BASE = 1.0
_OPTION = re.compile(r"^\s*([A-H])\)", re.M)
_WORD = re.compile(r"\S+")


def count_tokens(text: str) -> int:
    """The simulator's token count: one token per whitespace-separated word."""
    return len(_WORD.findall(text))


def _temper(q: float, temperature: float) -> float:
    if temperature <= 1e-6:
        return 1.0 if q > 0.5 else 0.0
    a, b = math.log(max(q, 1e-12)) / temperature, math.log(max(1 - q, 1e-12)) / temperature
    return 1.0 / (1.0 + math.exp(b - a))


class SimModel:
    """Generates replies for chat messages; see the module docstring for the model."""

    def __init__(self, index: TaskIndex) -> None:
        self.index = index

    def find_item(self, messages: Sequence[Mapping[str, Any]]) -> TaskItem | None:
        """The task item asked in the user messages (the last user message searched first)."""
        return self.index.find_in([ft.message_text(m) for m in messages if m.get("role") == "user"])

    def respond(self, messages: Sequence[Mapping[str, Any]], temperature: float,
                rng: np.random.Generator, n: int = 1, top_p: float = 1.0) -> list[str]:
        """``n`` independent replies to one conversation (identical ones at temperature 0)."""
        if temperature <= 1e-6:
            rng = np.random.default_rng(0)
            return self.respond(messages, 0.0, rng, 1, top_p) * n if n > 1 else self._respond(
                messages, 0.0, rng, 1, top_p)
        return self._respond(messages, temperature, rng, n, top_p)

    def _respond(self, messages: Sequence[Mapping[str, Any]], temperature: float,
                 rng: np.random.Generator, n: int, top_p: float) -> list[str]:
        users = [ft.message_text(m) for m in messages if m.get("role") == "user"]
        last = users[-1] if users else ""
        if roles.is_rewrite_request(last):
            return [roles.prompter_reply(last, rng, temperature) for _ in range(n)]
        if roles.is_judge_request(last):
            return [roles.judge_reply(last, self.index, rng, temperature) for _ in range(n)]
        f = ft.detect_features(messages)
        item = self.index.find_in(users) or arithmetic_item(last)
        if item is None:
            return [render.render_generic(last, f, rng) for _ in range(n)]
        if item.key_points:
            return [self._summary(item, f, temperature, rng) for _ in range(n)]
        if item.answer is None:
            return [render.render_generic(last, f, rng) for _ in range(n)]
        style = ft.style_of(f)
        wrong = item.distractors or self._fallback_distractors(item)
        probs = ft.outcome_probs(f, item.difficulty, item.id, len(wrong), temperature, top_p)
        answers: list[str | None] = [item.answer, *wrong, None]
        picks = ft.sample_outcomes(probs, n, rng)
        if item.task == "multiple_choice" or _OPTION.search(item.input):
            opts = _OPTION.findall(item.input)
            return [render.render_choice(answers[i], style, opts, rng) for i in picks]
        return [render.render_math(answers[i], style, f, item.input, rng) for i in picks]

    def quality(self, prompt: str, response: str) -> float:
        """True quality in [0, 1] of ``response`` to ``prompt`` (the reward model, no noise)."""
        return roles.quality(self.index.find(prompt), response, prompt)

    def _summary(self, item: TaskItem, f: ft.Features, temperature: float,
                 rng: np.random.Generator) -> str:
        style = ft.style_of(f)
        logit = (SUM_BASE + 0.5 * f.expert + 0.4 * f.reasoning + 0.3 * f.fewshot
                 - 1.5 * item.difficulty + ft.quirk(item.id) * 0.3)
        q = _temper(1.0 / (1.0 + math.exp(-logit)), temperature)
        if temperature <= 1e-6:
            keep = [k for k in item.key_points if q > 0.5]
        else:
            draws = rng.random(len(item.key_points))
            keep = [k for k, d in zip(item.key_points, draws) if d < q]
        if style in ("brief", "direct"):
            keep = keep[:2]
        return render.render_summary(keep, style, rng)

    @staticmethod
    def _fallback_distractors(item: TaskItem) -> tuple[str, ...]:
        ans = item.answer or ""
        opts = _OPTION.findall(item.input)
        if opts:
            return tuple(o for o in opts if o != ans)
        try:
            v = float(ans.replace(",", ""))
        except ValueError:
            return ("unknown",)
        fmt = (lambda x: str(int(x))) if v.is_integer() else (lambda x: f"{x:g}")
        return tuple(fmt(v + d) for d in (1, -1, 10, -10, v, 2, -2, 5))
