"""Templated arithmetic word problems with exact answers and plausible wrong answers.

Each template draws its numbers from a ``numpy.random.Generator`` and returns a
:class:`MathProblem`: the question, the exact answer (a ``Fraction``), the values a careless
solver would produce (wrong operation, dropped step: ``slips``), the number of steps and the
largest operand. :func:`distractors` turns those into an ordered list of wrong answers, the most
plausible first, which is what the simulator's error model draws from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["MathProblem", "TEMPLATES", "distractors", "fmt_answer", "fmt_number"]

NAMES = ("Ava", "Ben", "Carla", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas",
         "Kemi", "Luca", "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara")
ITEMS = (("notebook", "pencil"), ("apple", "orange"), ("ticket", "poster"), ("mug", "spoon"),
         ("shirt", "sock"), ("melon", "lemon"), ("book", "bookmark"), ("plant", "pot"))


@dataclass(frozen=True)
class MathProblem:
    question: str
    answer: Fraction
    slips: tuple[Fraction, ...]
    steps: int
    biggest: int


def fmt_number(x: Fraction | int, commas: bool = True) -> str:
    """Render a number the way a question would: ``1,250``, ``2.5``, ``3/8``."""
    x = Fraction(x)
    if x.denominator == 1:
        return f"{x.numerator:,}" if commas else str(x.numerator)
    if (x * 100).denominator == 1:
        return f"{float(x):.2f}".rstrip("0").rstrip(".")
    return f"{x.numerator}/{x.denominator}"


def fmt_answer(x: Fraction) -> str:
    """The canonical answer string: no thousands separators."""
    return fmt_number(x, commas=False)


def _money(x: Fraction | int) -> str:
    x = Fraction(x)
    return f"${x.numerator:,}" if x.denominator == 1 else f"${float(x):,.2f}"


def _pick(rng: np.random.Generator, seq: tuple) -> object:
    return seq[int(rng.integers(len(seq)))]


def _ri(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def shopping(rng: np.random.Generator) -> MathProblem:
    name = _pick(rng, NAMES)
    it1, it2 = _pick(rng, ITEMS)  # type: ignore[misc]
    a, b = _ri(rng, 2, 12), _ri(rng, 2, 15)
    p = Fraction(_ri(rng, 2, 40)) if rng.random() < 0.7 else Fraction(_ri(rng, 5, 80), 4)
    q = Fraction(_ri(rng, 1, 9))
    ans = a * p + b * q
    q_text = (f"{name} buys {a} {it1}s at {_money(p)} each and {b} {it2}s at {_money(q)} each. "
              f"How many dollars does {name} spend in total?")
    return MathProblem(q_text, ans, (a * p, b * q, (a + b) * p, a * q + b * p, a + b + p + q),
                       3, int(max(a, b, p, q)))


def change(rng: np.random.Generator) -> MathProblem:
    name = _pick(rng, NAMES)
    it1, _ = _pick(rng, ITEMS)  # type: ignore[misc]
    a, p = _ri(rng, 2, 9), _ri(rng, 3, 19)
    bill = next(b for b in (20, 50, 100, 200) if b > a * p)
    ans = Fraction(bill - a * p)
    q_text = (f"{name} buys {a} {it1}s that cost {_money(p)} each and pays with a {_money(bill)} "
              f"bill. How many dollars of change does {name} get?")
    return MathProblem(q_text, ans, (Fraction(a * p), Fraction(bill - p), Fraction(bill - a - p)),
                       2, bill)


def travel(rng: np.random.Generator) -> MathProblem:
    v1, t1 = _ri(rng, 4, 24) * 5, _ri(rng, 2, 6)
    if rng.random() < 0.5:
        ans = Fraction(v1 * t1)
        q_text = f"A train travels at {v1} km per hour for {t1} hours. How many kilometres does it travel?"
        return MathProblem(q_text, ans, (Fraction(v1 + t1), Fraction(v1 * (t1 - 1))), 1, v1)
    v2, t2 = _ri(rng, 4, 24) * 5, _ri(rng, 1, 5)
    ans = Fraction(v1 * t1 + v2 * t2)
    q_text = (f"A bus drives at {v1} km per hour for {t1} hours, then at {v2} km per hour for "
              f"{t2} hours. How many kilometres does it drive in total?")
    return MathProblem(q_text, ans, (Fraction(v1 * t1), Fraction(v2 * t2),
                                     Fraction((v1 + v2) * (t1 + t2)), Fraction(v1 * t2 + v2 * t1)),
                       3, max(v1, v2))


def ages(rng: np.random.Generator) -> MathProblem:
    a, b = _pick(rng, NAMES), _pick(rng, NAMES)
    while b == a:
        b = _pick(rng, NAMES)
    k, age, y = _ri(rng, 2, 5), _ri(rng, 3, 14), _ri(rng, 2, 12)
    ans = Fraction(k * age + y)
    q_text = (f"{a} is {k} times as old as {b}. {b} is {age} years old. "
              f"How old will {a} be in {y} years?")
    return MathProblem(q_text, ans, (Fraction(k * age), Fraction(k * (age + y)),
                                     Fraction(age + y), Fraction(k + age + y)), 2, age)


def area(rng: np.random.Generator) -> MathProblem:
    w, l = _ri(rng, 3, 30), _ri(rng, 4, 45)
    if rng.random() < 0.5:
        ans = Fraction(w * l)
        q_text = f"A rectangular garden is {w} metres wide and {l} metres long. What is its area in square metres?"
        return MathProblem(q_text, ans, (Fraction(2 * (w + l)), Fraction(w + l)), 1, max(w, l))
    s = _ri(rng, 2, min(w, l) - 1)
    ans = Fraction(w * l - s * s)
    q_text = (f"A rectangular lawn is {w} metres by {l} metres. A square flower bed {s} metres on "
              f"each side is dug out of it. How many square metres of lawn are left?")
    return MathProblem(q_text, ans, (Fraction(w * l), Fraction(w * l - 2 * s), Fraction(w * l - s),
                                     Fraction(s * s)), 3, max(w, l))


def sharing(rng: np.random.Generator) -> MathProblem:
    n, each, g = _ri(rng, 3, 9), _ri(rng, 6, 40), _ri(rng, 1, 5)
    total = n * each
    ans = Fraction(each - g)
    q_text = (f"{n} friends share {total} stickers equally. Then each friend gives away {g} "
              f"stickers. How many stickers does each friend have now?")
    return MathProblem(q_text, ans, (Fraction(each), Fraction(total - g), Fraction(total - n * g),
                                     Fraction(each + g)), 2, total)


def percent(rng: np.random.Generator) -> MathProblem:
    p = _ri(rng, 4, 60) * 5
    pc = int(_pick(rng, (10, 15, 20, 25, 30, 40, 50)))
    ans = Fraction(p * (100 - pc), 100)
    q_text = (f"A jacket costs ${p}. It is on sale for {pc}% off. "
              f"What is the sale price in dollars?")
    return MathProblem(q_text, ans, (Fraction(p * pc, 100), Fraction(p - pc),
                                     Fraction(p * (100 + pc), 100)), 2, p)


def savings(rng: np.random.Generator) -> MathProblem:
    name = _pick(rng, NAMES)
    s, w = _ri(rng, 3, 25) * 5, _ri(rng, 4, 20)
    x = _ri(rng, 1, s * w // 10) * 5
    ans = Fraction(s * w - x)
    q_text = (f"{name} saves ${s} every week for {w} weeks and then spends ${x} on a bike. "
              f"How many dollars does {name} have left?")
    return MathProblem(q_text, ans, (Fraction(s * w), Fraction(s * w + x), Fraction(s * (w - 1) - x),
                                     Fraction(s + w - x) if s + w > x else Fraction(s * w - 2 * x)),
                       2, s * w)


def pizza(rng: np.random.Generator) -> MathProblem:
    a, b = _pick(rng, NAMES), _pick(rng, NAMES)
    n = int(_pick(rng, (6, 8, 10, 12, 16)))
    x, y = _ri(rng, 1, n // 3), _ri(rng, 1, n // 3)
    ans = Fraction(n - x - y, n)
    q_text = (f"A pizza is cut into {n} equal slices. {a} eats {x} slices and {b} eats {y} slices. "
              f"What fraction of the pizza is left?")
    return MathProblem(q_text, ans, (Fraction(x + y, n), Fraction(n - x, n), Fraction(n - x - y, n + 1)),
                       3, n)


def factory(rng: np.random.Generator) -> MathProblem:
    per_day, days = _ri(rng, 12, 95) * 25, _ri(rng, 3, 30)
    if rng.random() < 0.5:
        ans = Fraction(per_day * days)
        q_text = f"A factory makes {per_day:,} bottles per day. How many bottles does it make in {days} days?"
        return MathProblem(q_text, ans, (Fraction(per_day * (days - 1)), Fraction(per_day + days)),
                           1, per_day)
    broken = _ri(rng, 1, 9) * 10
    ans = Fraction((per_day - broken) * days)
    q_text = (f"A factory makes {per_day:,} bottles per day, but {broken} of them break each day. "
              f"How many unbroken bottles does it make in {days} days?")
    return MathProblem(q_text, ans, (Fraction(per_day * days), Fraction(per_day * days - broken),
                                     Fraction((per_day + broken) * days)), 3, per_day)


def average(rng: np.random.Generator) -> MathProblem:
    name = _pick(rng, NAMES)
    k = _ri(rng, 3, 5)
    mean = _ri(rng, 55, 95)
    scores = [mean + _ri(rng, -8, 8) for _ in range(k - 1)]
    last = mean * k - sum(scores)
    tot = sum(scores) + last
    ans = Fraction(tot, k)
    shown = ", ".join(str(s) for s in scores + [last])
    q_text = f"{name} scored {shown} on {k} tests. What is {name}'s average score?"
    return MathProblem(q_text, ans, (Fraction(tot, k - 1), Fraction(tot), Fraction(tot - last, k - 1)),
                       2, max(scores + [last]))


TEMPLATES: tuple[Callable[[np.random.Generator], MathProblem], ...] = (
    shopping, change, travel, ages, area, sharing, percent, savings, pizza, factory, average)


def _digit_slip(x: Fraction) -> Fraction | None:
    if x.denominator != 1 or x < 10:
        return None
    s = str(x.numerator)
    return Fraction(int(s[:-2] + s[-1] + s[-2])) if s[-1] != s[-2] else Fraction(int(s) + 9)


def distractors(p: MathProblem, count: int = 8) -> list[str]:
    """Plausible wrong answers, most plausible first: the template's slips, off-by-one, digit slip."""
    a = p.answer
    cands: list[Fraction | None] = list(p.slips)
    if a.denominator == 1:
        cands += [a + 1, a - 1, _digit_slip(a), a * 10, a + 10, a - 10, a * 2, a + 2, a + 5, a - 5]
    elif (a * 100).denominator == 1:
        cands += [a + 1, a - 1, a * 10, Fraction(round(a)), a + Fraction(1, 2), a - Fraction(1, 2),
                  a * 2, a + 5]
    else:
        n, d = a.numerator, a.denominator
        cands += [Fraction(n + 1, d), Fraction(max(n - 1, 1), d), Fraction(d - n, d) if d > n else None,
                  Fraction(n, d + 1), Fraction(n + 1, d + 1), Fraction(1, d), Fraction(n, 2 * d)]
    out: list[str] = []
    seen = {fmt_answer(a)}
    for c in cands:
        if c is None or c <= 0:
            continue
        s = fmt_answer(c)
        if s not in seen:
            seen.add(s)
            out.append(s)
    k = 3
    while len(out) < count:
        s = fmt_answer(a + k) if a.denominator == 1 else fmt_answer(a * (k + 1))
        if s not in seen:
            seen.add(s)
            out.append(s)
        k += 1
    return out[:count]
