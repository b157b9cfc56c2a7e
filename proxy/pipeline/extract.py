"""Answer extractors for majority voting, and the normalisation that makes answers comparable.

``number``: the content of the last ``\\boxed{...}``, else the number after the last "the answer
is" / "answer:", else the last number in the text. Thousands separators (``1,234``), currency
(``$``), percent signs, unicode minus and trailing zeros are dropped; fractions and decimals are
compared exactly (``5/2`` == ``2.5`` -> ``"2.5"``; ``1/3`` -> ``"1/3"``). A number longer than
100 characters or with an exponent beyond two digits (``1e10000000``, which would take seconds
of the event loop to expand) is no answer.

``letter``: a multiple-choice letter A-H, by priority: "answer is (C)" / "answer: C", "option /
choice ... is C", "(C)", a line starting "C)" / "C.", a reply that is only the letter.

``regex``: the task's ``answer_regex``; the last match's first group (the whole match when the
pattern has no group), normalised by case-folding, collapsing whitespace and trimming
punctuation.

Every extractor returns ``None`` when the text carries no answer; such samples do not vote.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

__all__ = ["Extractor", "extract_letter", "extract_number", "extractor_for", "make_regex_extractor",
           "normalize_number", "normalize_text"]

Extractor = Callable[[str], "str | None"]

_NUM = r"[-−]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?/\s?\d+)?%?"
_NUM_RE = re.compile(_NUM)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS = re.compile(r"(?:answer|result)\s*(?:is|=|:)\s*(?:approximately\s+|about\s+)?", re.I)
_FRAC = re.compile(r"\\d?frac\{(-?\d+)\}\{(\d+)\}")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,2})?(?:/\d+)?")
_MAX_NUMBER_CHARS = 100


def normalize_number(raw: str) -> str | None:
    """A canonical string for a number as written (``"$1,234.50"`` -> ``"1234.5"``)."""
    text = _FRAC.sub(r"\1/\2", raw)
    text = text.replace("−", "-").replace("$", "").replace("%", "").replace(",", "")
    text = re.sub(r"\s+", "", text).rstrip(".")
    if len(text) > _MAX_NUMBER_CHARS or not _PLAIN_NUMBER.fullmatch(text):
        return None  # not a number, or one whose exponent would cost seconds (1e10000000)
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:  # a terminating decimal
        dec = Decimal(value.numerator) / Decimal(value.denominator)
        return format(dec.normalize(), "f")
    return f"{value.numerator}/{value.denominator}"


def _last_number(text: str) -> str | None:
    for match in reversed(list(_NUM_RE.finditer(text))):
        norm = normalize_number(match.group(0))
        if norm is not None:
            return norm
    return None


def extract_number(text: str) -> str | None:
    """The final numeric answer in ``text`` (see the module docstring), normalised."""
    boxed = _BOXED.findall(text)
    if boxed:
        inner = _FRAC.sub(r"\1/\2", boxed[-1])
        norm = normalize_number(inner) or _last_number(inner)
        if norm is not None:
            return norm
    marks = list(_ANSWER_IS.finditer(text))
    if marks:
        match = _NUM_RE.search(text, marks[-1].end())
        if match is not None:
            norm = normalize_number(match.group(0))
            if norm is not None:
                return norm
    return _last_number(text)


_LETTER_RULES = (
    re.compile(r"(?i:answer\s*(?:is|:)\s*(?:option\s+)?)\(?([A-H])\b\)?"),
    re.compile(r"(?i:(?:option|choice)\b[^.\n]{0,24}?\bis\s*)\(?([A-H])\b"),
    re.compile(r"\(([A-H])\)"),
    re.compile(r"^\s*([A-H])[).:](?:\s|$)", re.M),
    re.compile(r"^\s*\(?([A-H])\)?\s*\.?\s*$"),
)


def extract_letter(text: str) -> str | None:
    """The multiple-choice letter in ``text`` (upper case), by the rules' priority."""
    for rule in _LETTER_RULES:
        found = rule.findall(text)
        if found:
            return str(found[-1]).upper()
    return None


def normalize_text(raw: str) -> str:
    """Case-fold, collapse whitespace and trim surrounding punctuation and quotes."""
    return re.sub(r"\s+", " ", raw).strip().strip(".,;:!?\"'`*").strip().casefold()


def make_regex_extractor(pattern: str) -> Extractor:
    """An extractor returning the last match's first group (or whole match), normalised."""
    compiled = re.compile(pattern)

    def extract(text: str) -> str | None:
        matches = list(compiled.finditer(text))
        if not matches:
            return None
        last = matches[-1]
        raw = last.group(1) if compiled.groups else last.group(0)
        if raw is None:
            return None
        norm = normalize_text(raw)
        return norm or None

    return extract


def extractor_for(kind: str | None, answer_regex: str | None = None) -> Extractor:
    """The extractor for a task's ``extractor`` setting (``None`` -> ``number``)."""
    if kind == "letter":
        return extract_letter
    if kind == "regex":
        if not answer_regex:
            raise ValueError("the regex extractor needs answer_regex")
        return make_regex_extractor(answer_regex)
    return extract_number
