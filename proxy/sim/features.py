"""Prompt features the simulated model reacts to, and the answer distribution they imply.

Features are found by case-insensitive phrases in the system and user text (few-shot: an earlier
assistant turn containing "the answer is"). They set three things for a task item of difficulty d:

* skill:      logit = BASE + sum(SKILL[f]) - slope * d + quirk(item);  p = sigmoid(logit),
              with slope = SLOPE_REASONING when the reply reasons (cot, few-shot), else SLOPE.
* diversity:  r = sigmoid(DIV_BASE + sum(DIVERSITY[f])); wrong mass over the item's ordered
              distractors is geometric with ratio r: r -> 0 puts it all on the most tempting
              distractor (consistent errors), r -> 1 spreads it evenly (diverse errors).
* unparsable: u = UNPARSABLE[style] (halved by an expert persona): replies with no answer.

At temperature 1 the outcome distribution is [p(1-u), (1-p)(1-u) w_1..w_m, u]; a temperature T
raises it to the power 1/T and renormalises (T -> 0: always the most likely outcome); ``top_p``
then keeps the smallest set of outcomes whose mass reaches top_p.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Features", "detect_features", "message_text", "quirk", "style_of", "p_correct", "outcome_probs",
           "sample_outcomes", "ADDED_PHRASES"]

_PATTERNS: dict[str, re.Pattern[str]] = {
    "reasoning": re.compile(r"step[- ]by[- ]step|show your (?:reasoning|work)|explain your reasoning"
                            r"|think (?:it )?through|reason carefully"),
    "direct": re.compile(r"only the (?:final )?(?:answer|letter|number|option)|no explanation"
                         r"|without (?:any )?explanation|just the (?:final )?(?:answer|number|letter)"
                         r"|answer with only"),
    "expert": re.compile(r"you are (?:a|an) [^.\n]{0,60}?expert|as an expert"),
    "double_check": re.compile(r"double[- ]check|verify (?:your|each|every)|check your (?:work|answer)"),
    "brief": re.compile(r"one or two sentences|be brief|\bbriefly\b|\bconcise\b|in one sentence"),
}
_FEWSHOT = re.compile(r"the answer is", re.IGNORECASE)

BASE = 2.4
SLOPE = 4.5
SLOPE_REASONING = 3.6
QUIRK_SD = 0.8
SKILL = {"reasoning": -0.5, "direct": 0.1, "expert": 0.5, "double_check": 0.3, "fewshot": 0.2,
         "brief": -0.2}
DIV_BASE = 0.0
DIVERSITY = {"reasoning": 2.4, "direct": -2.0, "expert": -1.0, "double_check": -0.3,
             "fewshot": 1.5, "brief": -0.5}
UNPARSABLE = {"plain": 0.12, "brief": 0.06, "direct": 0.02, "reasoning": 0.02}

# Instruction phrases the simulated prompter may add when it rewrites a request.
ADDED_PHRASES = (
    "Think step by step, then finish with 'The answer is <answer>.'",
    "Double-check every calculation before answering.",
    "You are a careful subject expert.",
    "Reply with only the final answer, no explanation.",
    "Be brief: answer in one or two sentences.",
)


@dataclass(frozen=True)
class Features:
    reasoning: bool = False
    direct: bool = False
    expert: bool = False
    double_check: bool = False
    fewshot: bool = False
    brief: bool = False

    def active(self) -> tuple[str, ...]:
        return tuple(k for k in SKILL if getattr(self, k))


def message_text(msg: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string, a list of parts, or None."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def detect_features(messages: Sequence[Mapping[str, Any]]) -> Features:
    """Features of a conversation: phrases in system/user text, few-shot assistant turns."""
    text = "\n".join(message_text(m) for m in messages
                     if m.get("role") in ("system", "developer", "user")).lower()
    found = {k: bool(p.search(text)) for k, p in _PATTERNS.items()}
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    fewshot = any(m.get("role") == "assistant" and _FEWSHOT.search(message_text(m))
                  for m in messages[:max(last_user, 0)])
    return Features(fewshot=fewshot, **found)


def style_of(f: Features) -> str:
    """How the reply is written: 'direct', 'reasoning', 'brief' or 'plain'."""
    if f.direct:
        return "direct"
    if f.reasoning or f.fewshot:
        return "reasoning"
    return "brief" if f.brief else "plain"


@functools.lru_cache(maxsize=8192)
def quirk(item_id: str) -> float:
    """A fixed per-item offset to the skill logit (some items are oddly easy or hard)."""
    h = int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "little")
    u1 = ((h & 0xFFFFFFFF) + 0.5) / 2**32
    u2 = ((h >> 32) + 0.5) / 2**32
    return QUIRK_SD * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def p_correct(f: Features, difficulty: float, item_id: str) -> float:
    """Probability of the right answer at temperature 1, before unparsable replies."""
    style = style_of(f)
    slope = SLOPE_REASONING if style == "reasoning" else SLOPE
    logit = BASE + sum(SKILL[k] for k in f.active()) - slope * difficulty + quirk(item_id)
    return 1.0 / (1.0 + math.exp(-logit))


def outcome_probs(f: Features, difficulty: float, item_id: str, n_wrong: int,
                  temperature: float, top_p: float = 1.0) -> np.ndarray:
    """Distribution over [correct, distractor_1..n_wrong, unparsable] (see module docstring)."""
    p = p_correct(f, difficulty, item_id)
    style = style_of(f)
    u = UNPARSABLE[style] * (0.5 if f.expert else 1.0)
    r = 1.0 / (1.0 + math.exp(-(DIV_BASE + sum(DIVERSITY[k] for k in f.active()))))
    w = r ** np.arange(n_wrong, dtype=float)
    probs = np.empty(n_wrong + 2)
    probs[0] = p * (1 - u)
    probs[1:-1] = (1 - p) * (1 - u) * w / w.sum()
    probs[-1] = u
    if temperature <= 1e-6:
        out = np.zeros_like(probs)
        out[int(np.argmax(probs))] = 1.0
        return out
    if temperature != 1.0:
        probs = np.exp(np.log(np.maximum(probs, 1e-300)) / temperature)
        probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        keep = np.searchsorted(np.cumsum(probs[order]), top_p) + 1
        mask = np.zeros_like(probs)
        mask[order[:keep]] = 1.0
        probs = probs * mask / (probs * mask).sum()
    return probs


def sample_outcomes(probs: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """n outcome indices: 0 correct, 1..m a distractor, m+1 unparsable."""
    cdf = np.cumsum(probs)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return [min(int(i), len(probs) - 1) for i in idx]
