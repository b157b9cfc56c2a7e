"""The simulated model as a prompter (rewrites a request) and as a judge (scores a response).

Prompter: a user message with "Rewrite the following request/prompt/question" is answered with
the original request (the text after a "Request:" line, else everything after the first
paragraph) plus one or two instruction phrases from ``features.ADDED_PHRASES``; the question is
kept verbatim, so the rewritten prompt is recognised and its added phrases change correctness.

Judge: a prompt asking to rate/score a response is answered "Score: k" with
k = clip(round(1 + 9 * quality + N(0, JUDGE_SD)), 1, 10); with probability JUDGE_JUNK the reply
is junk ("I cannot rate this.", "Score: ten"). At temperature 0 there is no noise and no junk.
``quality`` is 1/0 for a right/wrong math or multiple-choice answer, the fraction of key points
covered for a summary, and a topical-overlap heuristic for anything else.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np

from proxy.sim.features import ADDED_PHRASES
from proxy.sim.render import content_words
from proxy.sim.tasks import TaskIndex, TaskItem, normalize

__all__ = ["is_rewrite_request", "is_judge_request", "prompter_reply", "judge_reply", "quality",
           "response_segment", "JUDGE_SD", "JUDGE_JUNK"]

JUDGE_SD = 0.8
JUDGE_JUNK = 0.05
_REWRITE = re.compile(r"rewrite the following|rewrite this (?:request|prompt|question)", re.I)
_JUDGE = re.compile(r"\b(?:rate|score|grade|evaluate)\b[^\n]{0,80}?\b(?:response|answer|summary|reply)\b"
                    r"|scale (?:of|from) 1 to 10|^[ \t]*score:", re.I | re.M)
_REQUEST_LINE = re.compile(r"^[ \t]*(?:request|prompt|question|original(?: request)?)\s*:\s*", re.I | re.M)
_MARKER = re.compile(r"^[ \t]*(?:\[|<|#+\s*)?(?:the\s+)?(?:candidate\s+|assistant(?:'s)?\s+|model\s+)?"
                     r"(?:response|answer|reply|output|summary)(?:\s+to\s+(?:evaluate|rate|score))?"
                     r"\s*(?:\]|>|:)[ \t]*", re.I | re.M)
_END = re.compile(r"^[ \t]*(?:</|\[/?end|rate\b|score\b|reply with|give (?:a|the) score|please rate|on a scale)",
                  re.I | re.M)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_LETTER = re.compile(r"\(([A-D])\)|\b([A-D])\b")
_JUNK = ("I cannot rate this.", "Score: ten", "The response is fine.", "Score: N/A")


def is_rewrite_request(text: str) -> bool:
    return bool(_REWRITE.search(text))


def is_judge_request(text: str) -> bool:
    return bool(_JUDGE.search(text))


def prompter_reply(text: str, rng: np.random.Generator, temperature: float) -> str:
    """The original request plus one or two added instruction phrases."""
    marks = list(_REQUEST_LINE.finditer(text))
    if marks:
        original = text[marks[-1].end():].strip()
    else:
        paras = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
        original = "\n\n".join(paras[1:]) if len(paras) > 1 else text.strip()
    if temperature <= 1e-6:
        chosen = [ADDED_PHRASES[0]]
    else:
        k = 1 + int(rng.random() < 0.5)
        chosen = [ADDED_PHRASES[int(i)] for i in rng.choice(len(ADDED_PHRASES), size=k, replace=False)]
    return original + "\n\n" + " ".join(chosen)


def response_segment(text: str, item: TaskItem | None) -> str:
    """The part of a judge prompt that is the response being judged."""
    marks = list(_MARKER.finditer(text))
    if marks:
        seg = text[marks[-1].end():]
        end = _END.search(seg)
        return seg[: end.start()] if end else seg
    if item is None:
        return text
    flat = normalize(text)
    for line in item.signature():
        flat = flat.replace(line, " ")
    return flat


def _as_number(s: str) -> Fraction | None:
    try:
        return Fraction(s.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def quality(item: TaskItem | None, response: str, prompt: str = "") -> float:
    """True quality in [0, 1] of ``response`` to ``item`` (see the module docstring)."""
    if item is None:
        asked, said = set(content_words(prompt, 12)), set(content_words(response, 40))
        overlap = len(asked & said) / max(len(asked), 1)
        length_ok = 1.0 if 3 <= len(response.split()) <= 200 else 0.3
        return round(0.2 + 0.5 * overlap * length_ok + 0.2 * length_ok, 4)
    if item.key_points:
        flat = normalize(response)
        for line in item.signature():
            flat = flat.replace(line, " ")
        return sum(normalize(k) in flat for k in item.key_points) / len(item.key_points)
    if item.answer is None:
        return 0.5
    if item.task == "multiple_choice" or (len(item.answer) == 1 and item.answer.isalpha()):
        letters = [a or b for a, b in _LETTER.findall(response)]
        return 1.0 if letters and letters[-1] == item.answer else 0.0
    nums = _NUMBER.findall(response)
    got = _as_number(nums[-1]) if nums else None
    return 1.0 if got is not None and got == _as_number(item.answer) else 0.0


def judge_reply(text: str, index: TaskIndex, rng: np.random.Generator, temperature: float) -> str:
    """A "Score: k" reply for a judge prompt (occasionally junk)."""
    item = index.find(text)
    if item is not None:
        q = quality(item, response_segment(text, item))
    else:
        seg = response_segment(text, None)
        q = quality(None, seg, text[: max(len(text) - len(seg), 0)] or text)
    if temperature <= 1e-6:
        return f"Score: {int(np.clip(round(1 + 9 * q), 1, 10))}"
    if rng.random() < JUDGE_JUNK:
        return _JUNK[int(rng.integers(len(_JUNK)))]
    noisy = 1 + 9 * q + rng.normal(0.0, JUDGE_SD * min(temperature, 2.0))
    return f"Score: {int(np.clip(round(noisy), 1, 10))}"
