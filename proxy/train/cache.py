"""The on-disk sample cache of live training: one JSON line per upstream outcome.

File ``DIR/samples.jsonl``; each line is ``{"key", "text", "pt", "ct", "usd"}`` (a sample: its
reply text, prompt and completion tokens, dollars) or ``{"key", "messages", "pt", "ct", "usd",
"failed"}`` (a prompt rewrite by a prompter model). A line is appended with one ``write`` on an
``O_APPEND`` descriptor as soon as its call completes, so a run killed at any point loses at most
the calls in flight; a torn last line is skipped on load.

Keys (see :func:`sample_key`) hash the model, the prompt's content, the question's input text and
the sample's index ``j`` for that (prompt, question) pair. Sample ``j`` is sent with a seed
derived from the same fields, so it is a fixed draw whoever asks for it: a restarted run, a run
with other profiles or another learner reads it back instead of calling the upstream.
Writes are small appends to the page cache, cheap enough to do on the event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from proxy.config import ModelConfig, PromptConfig

__all__ = ["SampleCache", "model_key", "prompt_key", "sample_key", "sample_seed"]

log = logging.getLogger(__name__)
_SEED_MASK = (1 << 63) - 1
FILE_NAME = "samples.jsonl"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def model_key(model: ModelConfig) -> str:
    """The model's identity: name, litellm string and (unless embedded) its ``api_base``."""
    base = "embedded" if model.embedded else (model.api_base or "")
    return _digest(model.name, model.model, base)[:20]


def prompt_key(prompt: PromptConfig) -> str:
    """A hash of everything that shapes the prompt (editing it invalidates its samples)."""
    return _digest(json.dumps(asdict(prompt), sort_keys=True, default=str))[:20]


def sample_key(model: str, prompt: str, query: str, j: int) -> str:
    return _digest("sample", model, prompt, query, str(j))[:32]


def rewrite_key(model: str, prompt: str, query: str) -> str:
    return _digest("rewrite", model, prompt, query)[:32]


def sample_seed(prompt: str, query: str, j: int) -> int:
    """The ``seed`` sent with sample ``j`` of (prompt, question)."""
    return int(_digest("seed", prompt, query, str(j))[:16], 16) & _SEED_MASK


class SampleCache:
    """Records by key, loaded from ``DIR/samples.jsonl`` and appended as calls complete.
    ``path=None`` keeps records in memory only."""

    def __init__(self, directory: str | Path | None) -> None:
        self.records: dict[str, Mapping[str, Any]] = {}
        self.path = None if directory is None else Path(directory) / FILE_NAME
        self._fd: int | None = None
        self.skipped = 0
        if self.path is not None and self.path.exists():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        with path.open("rb") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                    self.records[str(rec["key"])] = rec
                except (ValueError, KeyError, TypeError):
                    self.skipped += 1  # a line torn by a kill mid-write
        if self.skipped:
            log.warning("sample cache %s: skipped %d unreadable line(s)", path, self.skipped)

    def open(self) -> None:
        """Create the directory and open the file for appending (raises ``OSError``)."""
        if self.path is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if self.path.stat().st_size:  # start on a fresh line after a torn last line
            with self.path.open("rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def get(self, key: str) -> Mapping[str, Any] | None:
        return self.records.get(key)

    def put(self, record: Mapping[str, Any]) -> None:
        self.records[str(record["key"])] = record
        if self.path is not None:
            self.open()
            assert self._fd is not None
            os.write(self._fd, json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __len__(self) -> int:
        return len(self.records)
