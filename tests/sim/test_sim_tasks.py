"""Task sets: shipped files, reproducible generation, loading errors, and the prompt lookup."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from proxy.sim import make_tasks
from proxy.sim.settings import DEFAULT_TASKS_DIR
from proxy.sim.tasks import TaskFormatError, TaskIndex, load_task_dir, load_tasks


@pytest.fixture(scope="module")
def sets() -> dict[str, list]:
    return {name: load_tasks(DEFAULT_TASKS_DIR / f"{name}.jsonl")
            for name in ("math", "multiple_choice", "summarize")}


def test_shipped_sets_have_the_promised_shape(sets: dict[str, list]) -> None:
    math_items, mc, summ = sets["math"], sets["multiple_choice"], sets["summarize"]
    assert len(math_items) == 600 and len(mc) == 300 and len(summ) == 150
    splits = Counter(it.split for it in math_items)
    assert splits == {"train": 400, "test": 200}
    for it in math_items:
        Fraction(it.answer)  # every math answer is a number ("12", "2.5", "3/8")
        assert len(it.distractors) == 8 and it.answer not in it.distractors
    assert any("/" in it.answer for it in math_items) and any("." in it.answer for it in math_items)
    assert any(len(it.answer) >= 4 for it in math_items)
    for it in mc:
        lines = it.input.splitlines()
        assert [ln[:3] for ln in lines[1:]] == ["A) ", "B) ", "C) ", "D) "]
        assert it.answer in "ABCD" and sorted(it.distractors + (it.answer,)) == list("ABCD")
    for it in summ:
        assert it.answer is None and it.input.startswith("Summarize the following text:\n")
        assert it.key_points and all(k.lower() in it.input.lower() for k in it.key_points)
    diffs = sorted(it.difficulty for it in math_items)
    assert diffs[0] < 0.05 and diffs[-1] > 0.95 and 0.45 < diffs[300] < 0.55
    ids = [it.id for s in sets.values() for it in s]
    assert len(ids) == len(set(ids))


def test_generator_is_byte_identical(tmp_path: Path) -> None:
    make_tasks.write_all(tmp_path)
    for name in ("math", "multiple_choice", "summarize"):
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (DEFAULT_TASKS_DIR / f"{name}.jsonl").read_bytes()


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    good = (DEFAULT_TASKS_DIR / "math.jsonl").read_text().splitlines()[0]
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n\n" + good.replace('"split": "train"', '"split": "dev"')
                    .replace('"split": "test"', '"split": "dev"') + "\n")
    with pytest.raises(TaskFormatError, match=r"bad\.jsonl:3: 'split'"):
        load_tasks(path)
    path.write_text("{not json\n")
    with pytest.raises(TaskFormatError, match=r"bad\.jsonl:1:"):
        load_tasks(path)


def test_index_finds_items_inside_prompts(sets: dict[str, list]) -> None:
    index = TaskIndex(load_task_dir(DEFAULT_TASKS_DIR))
    for it in [*sets["math"][:50], *sets["multiple_choice"][:50], *sets["summarize"][:20]]:
        wrapped = f"Question: {it.input}\n\nReply with only the final answer, no explanation."
        assert index.find(wrapped) == it
        assert index.find(it.input.upper()) == it  # case-insensitive
    assert index.find("What is the capital of France?") is None
    mc = sets["multiple_choice"][0]
    assert index.find(mc.input.splitlines()[0]) is None  # the options are part of the question
