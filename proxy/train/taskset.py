"""Task sets for live training: JSONL lines ``{"input": str, "answer": str | number, ...}``.

Every line must be a JSON object with a non-empty string ``input`` and a reference ``answer``
that the task's extractor can read (``"266"``, ``"B"``); it is normalised the way sampled answers
are, so they compare as strings. Any bad line is a :class:`TaskSetError` naming ``file:line``.

**Split.** When every line carries ``"split": "train" | "test"`` (the shipped sets do: math 400 /
200, multiple_choice 200 / 100), that split is used; a set where only some lines carry it is an
error naming the first line without one (it would be easy to train on a "test" line otherwise).
When no line carries it, a seeded permutation
(``numpy.random.default_rng(seed)``) puts ``round(holdout * n)`` questions in held-out. Held-out
questions are never pulled by the trainer; they are for evaluating the policy afterwards.
A question's ``key`` is a hash of its input text, so caches survive re-numbered files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proxy.config import TaskConfig
from proxy.pipeline.extract import Extractor, extractor_for
from proxy.train.errors import TaskSetError

__all__ = ["TaskItem", "TaskSet", "load_task_set", "text_key"]


def text_key(text: str) -> str:
    """A short stable hash of ``text`` (cache keys)."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class TaskItem:
    """One question: ``input``, the normalised reference ``answer``, ``key`` (hash of input)."""

    input: str
    answer: str
    key: str
    line: int


@dataclass(frozen=True)
class TaskSet:
    """A task's questions split into ``train`` (pulled) and ``heldout`` (never pulled)."""

    task: str
    path: Path
    train: tuple[TaskItem, ...]
    heldout: tuple[TaskItem, ...]
    split_rule: str
    extractor: Extractor


def _reference(raw: object, extractor: Extractor, where: str) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)) or str(raw).strip() == "":
        raise TaskSetError(f"{where}: 'answer' must be a non-empty string or number "
                           "(live training needs a reference answer)")
    norm = extractor(str(raw))
    if norm is None:
        raise TaskSetError(f"{where}: the task's extractor cannot read the reference answer {raw!r}")
    return norm


def _parse(path: Path, extractor: Extractor) -> list[tuple[TaskItem, str | None]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskSetError(f"cannot read task set {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TaskSetError(f"{path}: not UTF-8 text") from None
    rows: list[tuple[TaskItem, str | None]] = []
    seen: dict[str, int] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise TaskSetError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise TaskSetError(f"{where}: must be a JSON object")
        inp = obj.get("input")
        if not isinstance(inp, str) or not inp.strip():
            raise TaskSetError(f"{where}: 'input' must be a non-empty string")
        answer = _reference(obj.get("answer"), extractor, where)
        split = obj.get("split")
        if split is not None and split not in ("train", "test"):
            raise TaskSetError(f"{where}: 'split' must be 'train' or 'test' (got {split!r})")
        key = text_key(inp)
        if key in seen:
            raise TaskSetError(f"{where}: duplicate input (first at line {seen[key]})")
        seen[key] = no
        rows.append((TaskItem(inp, answer, key, no), split))
    if not rows:
        raise TaskSetError(f"task set {path} has no questions")
    return rows


def load_task_set(task: TaskConfig, *, seed: int = 0, holdout: float = 1 / 3) -> TaskSet:
    """The task's set, validated and split (module docstring). Only majority-voting tasks with
    an answer extractor and a ``dataset`` qualify."""
    if task.aggregator != "majority" or task.extractor is None:
        raise TaskSetError(f"task '{task.name}' uses {task.aggregator} without an answer extractor; "
                           "live training supports majority-voting tasks with reference answers")
    if task.dataset is None:
        raise TaskSetError(f"task '{task.name}' has no 'dataset' (a JSONL task set) in the config")
    if not 0.0 < holdout < 1.0:
        raise TaskSetError(f"held-out fraction must be in (0, 1), got {holdout}")
    extractor = extractor_for(task.extractor, task.answer_regex)
    rows = _parse(Path(task.dataset), extractor)
    split_at = next((item.line for item, split in rows if split is not None), None)
    unsplit = next((item.line for item, split in rows if split is None), None)
    if split_at is not None and unsplit is not None:
        raise TaskSetError(f"{task.dataset}:{unsplit}: no 'split' field, but line {split_at} has one "
                           "(give every line a split, or none)")
    if split_at is not None:
        train = tuple(item for item, split in rows if split == "train")
        heldout = tuple(item for item, split in rows if split == "test")
        rule = "the file's split field"
    else:
        order = np.random.default_rng(seed).permutation(len(rows))
        n_out = min(len(rows) - 1, max(1, round(holdout * len(rows))))
        out = set(order[:n_out].tolist())
        train = tuple(item for i, (item, _) in enumerate(rows) if i not in out)
        heldout = tuple(item for i, (item, _) in enumerate(rows) if i in out)
        rule = f"seeded permutation (seed {seed}, held-out fraction {holdout:g})"
    if not train:
        raise TaskSetError(f"task set {task.dataset} has no train questions")
    return TaskSet(task.name, Path(task.dataset), train, heldout, rule, extractor)
