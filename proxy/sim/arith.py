"""Arithmetic the simulator was not shipped: a question such as "What is 12 + 30?" or "Compute
17 times 3 minus 4" becomes a math item made on the spot, answered by the same error model as
the shipped word problems.

The last user message, if at most 300 characters long, is searched for one expression of at least
two numbers joined by ``+ - * / x × ÷`` or the words *plus, minus, times, multiplied by, divided
by, over*, with parentheses allowed. It counts only when the message asks for it: it is the whole
message, or the message starts with *what is, what's, compute, calculate, evaluate, how much is* or
*solve*, or the expression ends in ``=`` (so "the 1990-2000 decade" stays chat). It is evaluated
exactly (:mod:`fractions`, no ``eval``); a division by zero, a result that is not a whole number or
a terminating decimal of up to 4 places, more than 12 numbers, one of more than 15 digits or more
than 64 tokens is no item (the generic reply, as before). The item's difficulty grows with the
number of operations and the size of the numbers, so bigger sums are got wrong more often, and the
distractors are the simulator's usual near misses (±1, ±10, ...).
"""

from __future__ import annotations

import hashlib
import re
from fractions import Fraction

from proxy.sim.tasks import TaskItem

__all__ = ["arithmetic_item"]

_WORDS = ((re.compile(r"\bmultiplied\s+by\b", re.I), "*"), (re.compile(r"\btimes\b", re.I), "*"),
          (re.compile(r"\bdivided\s+by\b", re.I), "/"), (re.compile(r"\bover\b", re.I), "/"),
          (re.compile(r"\bplus\b", re.I), "+"), (re.compile(r"\bminus\b", re.I), "-"),
          (re.compile(r"(?<=\d)\s*[x×]\s*(?=[\d(])"), "*"), (re.compile("÷"), "/"))
_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_EXPR = re.compile(rf"[(\s]*-?{_NUMBER}[)\s]*(?:[-+*/][(\s]*-?{_NUMBER}[)\s]*)+")
_TOKEN = re.compile(rf"{_NUMBER}|[-+*/()]")
_ASKED = re.compile(r"^\W*(?:what\s+is|what's|compute|calculate|evaluate|how\s+much\s+is|solve)\b",
                    re.I)
_LEFT = re.compile(r"[\s?.!=:]*")
_MAX_NUMBERS, _MAX_DIGITS, _MAX_TOKENS = 12, 15, 64  # 64: parentheses too (the parser recurses)
_MAX_CHARS = 300


def arithmetic_item(text: str) -> TaskItem | None:
    """A math item for the arithmetic expression in ``text``, or None when there is none."""
    if len(text) > _MAX_CHARS:  # a question, not a document (and the search stays cheap)
        return None
    normal = text
    for pattern, op in _WORDS:
        normal = pattern.sub(f" {op} ", normal)
    found = max(_EXPR.finditer(normal), key=lambda m: len(m.group()), default=None)
    if found is None:
        return None
    rest = normal[:found.start()] + normal[found.end():]
    if not (_LEFT.fullmatch(rest) or _ASKED.match(normal)
            or normal[found.end():].lstrip().startswith("=")):
        return None
    tokens = _TOKEN.findall(found.group())
    numbers = [t for t in tokens if t[0].isdigit()]
    size = max(len(n.replace(",", "").split(".")[0]) for n in numbers)
    if len(numbers) > _MAX_NUMBERS or size > _MAX_DIGITS or len(tokens) > _MAX_TOKENS:
        return None
    try:
        value = _Parser(tokens).parse()
    except (ValueError, ZeroDivisionError, IndexError):
        return None
    answer = _decimal(value)
    if answer is None:
        return None
    difficulty = min(1.0, 0.1 * (len(numbers) - 1) + 0.08 * size)
    key = " ".join(tokens)
    return TaskItem(id="arith:" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest(),
                    task="math", input=text, answer=answer, difficulty=difficulty, split="adhoc")


def _decimal(value: Fraction) -> str | None:
    """``value`` as the plain decimal it is (up to 4 places), or None; exact, no floats."""
    scaled = value * 10_000
    if scaled.denominator != 1:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    whole, part = divmod(abs(scaled.numerator), 10_000)
    return f"{'-' if value < 0 else ''}{whole}.{part:04d}".rstrip("0")


class _Parser:
    """Recursive descent over ``+ -`` / ``* /`` / unary minus / parentheses, exact fractions."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i = tokens, 0

    def parse(self) -> Fraction:
        value = self._sum()
        if self.i != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> str:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _sum(self) -> Fraction:
        value = self._product()
        while self._peek() in ("+", "-"):
            value = value + self._product() if self._take() == "+" else value - self._product()
        return value

    def _product(self) -> Fraction:
        value = self._unary()
        while self._peek() in ("*", "/"):
            value = value * self._unary() if self._take() == "*" else value / self._unary()
        return value

    def _unary(self) -> Fraction:
        if self._peek() == "-":
            self._take()
            return -self._unary()
        token = self._take()
        if token == "(":
            value = self._sum()
            if self._take() != ")":
                raise ValueError("unbalanced parentheses")
            return value
        if not token[0].isdigit():
            raise ValueError(f"unexpected {token!r}")
        return Fraction(token.replace(",", ""))
