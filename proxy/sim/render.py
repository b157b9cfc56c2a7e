"""Reply text for a sampled outcome, in the style the prompt asked for.

Math: ``direct`` -> "42"; ``reasoning`` -> a few sentences of working ending "The answer is 42.";
``brief`` -> "The answer is 42."; ``plain`` -> one sentence with the number last (integers of
1,000 and more sometimes written with thousands separators). Multiple choice: "C",
"... The answer is (C).", "The correct option is C.". An unparsable outcome gives a reply with no
answer in it. Summaries: the chosen key points, verbatim, joined into sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from proxy.sim.features import Features

__all__ = ["render_math", "render_choice", "render_summary", "render_generic", "content_words"]

_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
_UNSURE = ("I am not sure.", "I cannot work that out from the information given.",
           "This question seems to be missing some information.", "Hmm, that is a tricky one.")
_PLAIN = ("So the result is {x}.", "Working it out, the total comes to {x}.",
          "Putting the numbers together, we get {x}.", "That works out to {x}.")
_STOP = frozenset("""a an and are as at be by can could did do does for from had has have how i in
into is it its me my of on or our please should so than that the their then there these this to
was we what when where which who why will with would you your about tell explain write give""".split())


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _with_commas(x: str) -> str:
    return f"{int(x):,}" if x.isdigit() and len(x) >= 4 else x


def render_math(answer: str | None, style: str, f: Features, question: str,
                rng: np.random.Generator) -> str:
    """A reply to a word problem whose final answer is ``answer`` (None: no answer)."""
    if answer is None:
        return "Not sure." if style == "direct" else _pick(rng, _UNSURE)
    if style == "direct":
        return answer
    if style == "brief":
        return f"The answer is {answer}."
    if style == "reasoning":
        nums = _NUM.findall(question)[:3] or ["the given values"]
        steps = [
            _pick(rng, ("Let's work through this step by step.", "Let me solve this carefully.",
                        "First, I will set up the problem.")),
            f"The problem gives us {', '.join(nums[:-1]) + ' and ' if len(nums) > 1 else ''}{nums[-1]}.",
            _pick(rng, ("Combining the quantities in the right order gives the result.",
                        "Applying each operation in turn, the intermediate values follow.",
                        "Multiplying and adding the parts as described leads to the total.")),
        ]
        if f.double_check:
            steps.append("Double-checking the arithmetic confirms it.")
        return " ".join(steps) + f" The answer is {answer}."
    shown = _with_commas(answer) if rng.random() < 0.5 else answer
    if f.expert:
        return f"After checking the calculation carefully, the result is {shown}."
    return _pick(rng, _PLAIN).format(x=shown)


def render_choice(letter: str | None, style: str, options: Sequence[str],
                  rng: np.random.Generator) -> str:
    """A reply to a multiple-choice question choosing ``letter`` (None: no choice)."""
    if letter is None:
        return "I am not sure which option is right."
    if style == "direct":
        return letter
    if style == "brief":
        return f"The answer is ({letter})."
    if style == "reasoning":
        others = [o for o in "ABCD"[: max(len(options), 2)] if o != letter][:2]
        parts = [f"Option {o} does not fit the question." for o in others]
        return ("Let me consider each option in turn. " + " ".join(parts)
                + f" Option {letter} matches. The answer is ({letter}).")
    return _pick(rng, (f"The correct option is {letter}.", f"I would choose {letter}.",
                       f"The best choice here is {letter}."))


def render_summary(points: Sequence[str], style: str, rng: np.random.Generator) -> str:
    """A summary mentioning exactly ``points`` (verbatim)."""
    if not points:
        return "The text describes a recent event and how people reacted to it."
    if style in ("brief", "direct"):
        return "In short, " + " and ".join(points) + "."
    lead = _pick(rng, ("The text reports that", "According to the passage,", "In summary,"))
    sentences = [f"{lead} {points[0]}."]
    links = ("It also notes that", "In addition,", "Furthermore,", "Finally,")
    for i, p in enumerate(points[1:]):
        sentences.append(f"{links[min(i, len(links) - 1)]} {p}.")
    return " ".join(sentences)


def content_words(text: str, limit: int = 4) -> list[str]:
    """The first distinct non-stop-words of a text (the topic echoed by a generic reply)."""
    out: list[str] = []
    for w in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", text):
        lw = w.lower()
        if lw not in _STOP and lw not in out:
            out.append(lw)
            if len(out) == limit:
                break
    return out


def render_generic(text: str, f: Features, rng: np.random.Generator) -> str:
    """A plausible reply to anything else: echo the topic words."""
    words = content_words(text)
    topic = ", ".join(words[:-1]) + (" and " if len(words) > 1 else "") + (words[-1] if words else "")
    topic = topic or "your question"
    if f.brief or f.direct:
        return f"Briefly: {topic} mostly depends on the details of your situation."
    opener = _pick(rng, ("Good question.", "Here is a short overview.", "Sure."))
    return (f"{opener} When it comes to {topic}, the key is to start from the basics and be clear "
            f"about your goal. Consider the main trade-offs, try a small example first, and "
            f"adjust based on what you learn.")
