"""Arithmetic the simulator was not shipped: parsed exactly, answered by the error model."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from proxy.pipeline.extract import extract_number
from proxy.sim.arith import arithmetic_item
from proxy.sim.model import SimModel
from proxy.sim.server import load_model
from proxy.sim.settings import DEFAULT_TASKS_DIR


@pytest.mark.parametrize(("text", "answer"), [
    ("What is 12 + 30?", "42"),
    ("17 times 3", "51"),
    ("Compute 45 - 18.", "27"),
    ("What is (3 + 4) * 2?", "14"),
    ("what is 7 / 2", "3.5"),
    ("What is 10 divided by 4?", "2.5"),
    ("How much is 6 multiplied by 7?", "42"),
    ("Calculate 1,200 + 35.5", "1235.5"),
    ("what is -3 - -4?", "1"),
    ("3x4=", "12"),
    ("12 + 30 =", "42"),
    ("What is 1 / 3?", None),  # not a terminating decimal
    ("What is 5 / 0?", None),
    ("What is (3 + 4?", None),  # unbalanced
    ("What is 12?", None),  # one number is no arithmetic
    ("What is 99999999999999999 + 1?", None),  # over 15 digits
    ("Tell me about the 1990-2000 decade", None),  # not asked for
    ("Call 555-1234 please", None),
    ("(" * 100_000 + "1+2", None),  # too many tokens: no deep recursion
])
def test_an_arithmetic_question_is_an_item_with_the_exact_answer(text: str,
                                                                 answer: str | None) -> None:
    item = arithmetic_item(text)
    assert (item.answer if item else None) == answer
    if item is not None:
        assert item.task == "math" and item.input == text and 0 < item.difficulty <= 1


def test_bigger_arithmetic_is_harder() -> None:
    small, big = arithmetic_item("What is 2 + 3?"), arithmetic_item("What is 4821 * 37 + 905?")
    assert small is not None and big is not None and small.difficulty < big.difficulty


@pytest.fixture(scope="module")
def model() -> SimModel:
    return load_model(DEFAULT_TASKS_DIR)


def test_the_simulator_answers_arithmetic_through_its_error_model(model: SimModel) -> None:
    messages = [{"role": "system", "content": "Think step by step."},
                {"role": "user", "content": "What is 12 + 30?"}]
    replies = model.respond(messages, 1.0, np.random.default_rng(0), n=64)
    answers = Counter(extract_number(r) for r in replies)
    assert answers.most_common(1)[0][0] == "42"  # a majority vote gets it right
    assert 0.2 < answers["42"] / 64 < 1  # ... though single samples err
    wrong = {a for a in answers if a not in ("42", None)}
    assert wrong and all(abs(float(a) - 42) <= 42 for a in wrong)  # near misses
    assert model.respond(messages, 0.0, np.random.default_rng(0)) == model.respond(
        messages, 0.0, np.random.default_rng(1))  # deterministic at temperature 0
