"""Templated multiple-choice questions and summarisation passages.

Multiple choice: arithmetic facts, unit conversions, synthetic capitals of invented countries
and number comparisons; the generator knows the answer and orders the wrong options by how
tempting they are. Summaries: short invented news items whose ``key_points`` (facts a good
summary mentions) appear verbatim as sentences in the passage, mixed with filler sentences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proxy.sim.gen_math import NAMES

__all__ = ["ChoiceQuestion", "Passage", "CHOICE_TEMPLATES", "PASSAGE_TEMPLATES", "format_choice"]

LETTERS = "ABCD"


@dataclass(frozen=True)
class ChoiceQuestion:
    question: str
    correct: str
    wrong: tuple[str, str, str]   # most tempting first
    steps: int


@dataclass(frozen=True)
class Passage:
    text: str
    key_points: tuple[str, ...]


def _ri(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def _word(rng: np.random.Generator, parts: int) -> str:
    syl = ("ka", "lo", "ve", "dri", "mar", "ton", "sel", "qui", "bra", "nor", "zel", "fin",
           "gor", "al", "eth", "ri", "mo", "sta", "vin", "dol")
    return "".join(syl[int(rng.integers(len(syl)))] for _ in range(parts)).capitalize()


def arithmetic(rng: np.random.Generator) -> ChoiceQuestion:
    a, b = _ri(rng, 11, 99), _ri(rng, 3, 19)
    c = a * b
    return ChoiceQuestion(f"Which of the following is equal to {a} times {b}?", str(c),
                          (str(c + a), str(c - b), str(a * (b + 2))), 1 + (a > 50) + (b > 12))


UNITS = (("centimetres", "metres", 100), ("grams", "kilograms", 1000), ("minutes", "hours", 60),
         ("millilitres", "litres", 1000), ("seconds", "minutes", 60), ("metres", "kilometres", 1000))


def conversion(rng: np.random.Generator) -> ChoiceQuestion:
    small, big, f = UNITS[int(rng.integers(len(UNITS)))]
    x = _ri(rng, 2, 40) / 2
    xs = f"{x:g}"
    v = round(x * f)
    return ChoiceQuestion(f"How many {small} are there in {xs} {big}?", f"{v:g}",
                          (f"{x * f / 10:g}", f"{x * f * 10:g}", f"{x + f:g}"), 2 if x % 1 else 1)


def capital(rng: np.random.Generator) -> ChoiceQuestion:
    country = _word(rng, 3) + "ia"
    cities = [_word(rng, 2) + suf for suf in ("ton", "burg", "ville", "port")]
    return ChoiceQuestion(f"In the Atlas of Imagined Lands, what is the capital of {country}?",
                          cities[0], (cities[1], cities[2], cities[3]), 2)


def comparison(rng: np.random.Generator) -> ChoiceQuestion:
    base = _ri(rng, 11, 98)
    vals = [base / 100, base / 1000, (base + _ri(rng, 1, 9)) / 1000, base / 10000]
    texts = [f"{v:g}" for v in vals]
    return ChoiceQuestion(f"Which of these numbers is the largest: {', '.join(sorted(texts))}?",
                          texts[0], (texts[2], texts[1], texts[3]), 3)


CHOICE_TEMPLATES: tuple[Callable[[np.random.Generator], ChoiceQuestion], ...] = (
    arithmetic, conversion, capital, comparison)


def format_choice(q: ChoiceQuestion, rng: np.random.Generator) -> tuple[str, str, list[str]]:
    """Shuffle the options: returns (input text, answer letter, wrong letters most tempting first)."""
    opts = [q.correct, *q.wrong]
    order = rng.permutation(4)
    letters = {int(src): LETTERS[dst] for dst, src in enumerate(order)}
    lines = [q.question] + [f"{LETTERS[i]}) {opts[int(src)]}" for i, src in enumerate(order)]
    return "\n".join(lines), letters[0], [letters[i] for i in (1, 2, 3)]


FILLER = ("Local residents had mixed feelings about the news.", "The weather that week was mild.",
          "Several people were interviewed for this report.", "More details are expected soon.",
          "The announcement was made on a Tuesday morning.", "Photographs were shared online.",
          "Some observers called it a turning point.", "Not everyone agreed on what it meant.")


def company(rng: np.random.Generator) -> tuple[str, ...]:
    firm, town = _word(rng, 2) + " Foods", _word(rng, 2) + "by"
    jobs, year, pct = _ri(rng, 40, 900), _ri(rng, 1990, 2023), _ri(rng, 5, 60)
    return (f"{firm} opened a new factory in {town}", f"the factory created {jobs} jobs",
            f"the company was founded in {year}", f"sales rose by {pct} percent last year",
            f"the chief executive is {NAMES[int(rng.integers(len(NAMES)))]} {_word(rng, 2)}")


def study(rng: np.random.Generator) -> tuple[str, ...]:
    uni, subj = "University of " + _word(rng, 2), _word(rng, 2).lower() + " beetles"
    n, weeks, pct = _ri(rng, 20, 400), _ri(rng, 3, 30), _ri(rng, 10, 80)
    return (f"researchers at the {uni} studied {subj}", f"the study followed {n} animals",
            f"the experiment lasted {weeks} weeks", f"warmer nests raised survival by {pct} percent",
            "the team plans a larger follow-up study")


def match(rng: np.random.Generator) -> tuple[str, ...]:
    home, away = _word(rng, 2) + " Rovers", _word(rng, 2) + " United"
    g1, g2 = _ri(rng, 2, 6), _ri(rng, 0, 1)
    crowd = _ri(rng, 3, 60) * 1000
    player = f"{NAMES[int(rng.integers(len(NAMES)))]} {_word(rng, 2)}"
    return (f"{home} beat {away} {g1} to {g2}", f"{player} scored twice",
            f"the crowd numbered {crowd:,}", f"{home} moved to the top of the league")


def festival(rng: np.random.Generator) -> tuple[str, ...]:
    town = _word(rng, 2) + "ford"
    days, visitors, bands = _ri(rng, 2, 9), _ri(rng, 2, 90) * 1000, _ri(rng, 5, 80)
    return (f"the {town} music festival ran for {days} days", f"about {visitors:,} visitors attended",
            f"{bands} bands performed", "a new stage was built by the river",
            f"ticket money went to the {town} library", "organisers plan to return next summer")


PASSAGE_TEMPLATES: tuple[Callable[[np.random.Generator], tuple[str, ...]], ...] = (
    company, study, match, festival)


def make_passage(facts: tuple[str, ...], rng: np.random.Generator) -> Passage:
    """Mix fact sentences with filler sentences into one paragraph."""
    k = min(len(facts), 3 + int(rng.integers(len(facts) - 2)))
    chosen = tuple(facts[:k])
    fillers = list(rng.choice(len(FILLER), size=int(rng.integers(1, 4)), replace=False))
    sentences = [f[0].upper() + f[1:] + "." for f in chosen]
    for j in fillers:
        sentences.insert(int(rng.integers(1, len(sentences) + 1)), FILLER[int(j)])
    return Passage(" ".join(sentences), chosen)
