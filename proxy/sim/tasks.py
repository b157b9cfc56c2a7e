"""Task sets: JSONL loading and the lookup that recognises a task item inside a prompt.

A task file holds one JSON object per line::

    {"id": str, "task": str, "input": str, "answer": str | null, "difficulty": float in [0, 1],
     "split": "train" | "test", "distractors": [str, ...]?, "key_points": [str, ...]?, ...}

Other keys are kept in ``TaskItem.extra``. A bad line raises :class:`TaskFormatError` naming
the file and the line.

:class:`TaskIndex` finds the item whose question appears anywhere in a text (prompt templates
wrap it, a prompter rewrite keeps it). Each item's *signature* is its input's lines, less a
leading header line ending in ":" ("Summarize the following text:"). The longest signature line
contributes one *anchor*: a window of ``ANCHOR_WORDS`` whitespace-separated, lower-cased words
that no other item contains. A lookup slides the same window over the text's words (one dict
probe per word) and then checks that every signature line occurs in the text, so a request
costs O(words in the prompt), independent of the number of items.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TaskItem", "TaskFormatError", "TaskIndex", "load_tasks", "load_task_dir", "normalize"]

ANCHOR_WORDS = 6
SPLITS = ("train", "test")


class TaskFormatError(ValueError):
    """A task file line that is not a valid task item; the message names file and line."""


def normalize(text: str) -> str:
    """Lower-case and collapse every run of whitespace to one space."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class TaskItem:
    id: str
    task: str
    input: str
    answer: str | None
    difficulty: float
    split: str
    distractors: tuple[str, ...] = ()
    key_points: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, obj: Any) -> TaskItem:
        """Validate one decoded JSON object; raises ``ValueError`` with the reason."""
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")
        for key in ("id", "task", "input"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise ValueError(f"{key!r} must be a non-empty string")
        answer = obj.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise ValueError("'answer' must be a string or null")
        diff = obj.get("difficulty")
        if isinstance(diff, bool) or not isinstance(diff, int | float) or not 0.0 <= diff <= 1.0:
            raise ValueError("'difficulty' must be a number in [0, 1]")
        if obj.get("split") not in SPLITS:
            raise ValueError(f"'split' must be one of {SPLITS}")
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("distractors", "key_points"):
            val = obj.get(key, [])
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise ValueError(f"{key!r} must be a list of strings")
            lists[key] = tuple(val)
        known = {"id", "task", "input", "answer", "difficulty", "split", "distractors", "key_points"}
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(obj["id"], obj["task"], obj["input"], answer, float(diff), obj["split"],
                   lists["distractors"], lists["key_points"], extra)

    def signature(self) -> tuple[str, ...]:
        """The normalised input lines that must all occur in a prompt that asks this item."""
        lines = [normalize(s) for s in self.input.splitlines() if s.strip()]
        if len(lines) > 1 and lines[0].endswith(":"):
            lines = lines[1:]
        return tuple(lines)


def load_tasks(path: str | Path) -> list[TaskItem]:
    """Load one JSONL task file (blank lines skipped); a file that cannot be read, or a bad
    line, raises :class:`TaskFormatError`."""
    path = Path(path)
    items: list[TaskItem] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    items.append(TaskItem.from_json(json.loads(line)))
                except ValueError as exc:  # json.JSONDecodeError is a ValueError
                    raise TaskFormatError(f"{path}:{lineno}: {exc}") from exc
                except RecursionError:
                    raise TaskFormatError(f"{path}:{lineno}: JSON nested too deeply") from None
    except OSError as exc:
        raise TaskFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TaskFormatError(f"{path}: not UTF-8 text") from None
    return items


def load_task_dir(directory: str | Path) -> list[TaskItem]:
    """Load every ``*.jsonl`` file of a directory, in name order."""
    items: list[TaskItem] = []
    for p in sorted(Path(directory).glob("*.jsonl")):
        items += load_tasks(p)
    return items


class TaskIndex:
    """Find the task item asked in a text, by anchor windows (see the module docstring)."""

    def __init__(self, items: Iterable[TaskItem]) -> None:
        self.items: tuple[TaskItem, ...] = tuple(items)
        self.by_id: dict[str, TaskItem] = {it.id: it for it in self.items}
        self._sigs: dict[str, tuple[str, ...]] = {it.id: it.signature() for it in self.items}
        windows: dict[str, list[str]] = {}
        counts: Counter[str] = Counter()
        for it in self.items:
            key_line = max(self._sigs[it.id], key=len).split()
            k = min(ANCHOR_WORDS, len(key_line))
            wins = list(dict.fromkeys(" ".join(key_line[i:i + k]) for i in range(len(key_line) - k + 1)))
            windows[it.id] = wins
            counts.update(wins)
        self._anchors: dict[str, list[TaskItem]] = {}
        self._sizes: set[int] = set()
        for it in self.items:
            wins = windows[it.id]
            anchor = next((w for w in wins if counts[w] == 1), wins[0])
            self._anchors.setdefault(anchor, []).append(it)
            self._sizes.add(len(anchor.split()))

    def __len__(self) -> int:
        return len(self.items)

    def find(self, text: str) -> TaskItem | None:
        """The item whose signature occurs in ``text`` (the longest if several), else None."""
        words = text.lower().split()
        if not words:
            return None
        flat = " ".join(words)
        best: TaskItem | None = None
        for size in self._sizes:
            for i in range(len(words) - size + 1):
                cands = self._anchors.get(" ".join(words[i:i + size]))
                if not cands:
                    continue
                for it in cands:
                    if (best is None or len(it.input) > len(best.input)) and all(
                            s in flat for s in self._sigs[it.id]):
                        best = it
        return best

    def find_in(self, texts: Sequence[str]) -> TaskItem | None:
        """Search texts from the last to the first; the first text that names an item wins."""
        for text in reversed(texts):
            found = self.find(text)
            if found is not None:
                return found
        return None
