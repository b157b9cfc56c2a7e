"""Which task family a request belongs to: explicit choice, configured rules, then a trained model.

Order: (1) ``iapo.task`` in the body or the ``x-iapo-task`` header (an unknown task is a 400);
(2) the tasks' configured regex ``patterns`` in config order (first match wins, source
``rule:TASK[i]``); (3) a hashed n-gram softmax-regression model (source ``classifier``) whose top
probability must reach ``classifier.min_confidence``; else (4) ``classifier.fallback_task``
(source ``fallback``).

A saved model or a training file that cannot be used raises :class:`proxy.config.ConfigError`
naming the config key (``classifier.path``, ``tasks[i].dataset``), the file (and line) and what is
wrong.

Features (:func:`features`): lower-cased text with digits mapped to ``0``; word unigrams and
bigrams, character trigrams of each word with boundary marks, and a few structural flags
(three or more option letters ``A)``/``(B)``/``c.``, how many numbers, arithmetic signs,
sentence count, a text block after the first line, question mark, length bucket). Each is hashed with
CRC32 into ``2**15`` buckets; a bucket's value is its count divided by the square root of the
total count. The model is ``p = softmax(x W + b)``, fitted by a few epochs of class-balanced SGD
on the cross-entropy (:func:`fit_model`). Training data: every task set's ``train`` split plus
the shipped examples in ``proxy/pipeline/data/*.jsonl`` (none there, a broken install, is a
``ConfigError``). The logits are linear in the counts, so prediction sums memoised per-word,
per-word-pair and per-flag rows of ``W`` (no array per request): about 15 microseconds for a
short question.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import zipfile
import zlib
from collections import Counter
from itertools import chain
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import Config, ConfigError
from proxy.errors import InvalidRequest, shown

__all__ = ["DIM", "TaskClassifier", "TaskDecision", "classifier_path", "features", "fit_model",
           "last_user_text", "train_classifier", "training_examples"]

log = logging.getLogger(__name__)

DIM = 1 << 15
MAX_CHARS = 8000
DATA_DIR = Path(__file__).resolve().parent / "data"
_TOKEN = re.compile(r"[a-z0]+|[?$%=+*/-]")
# an option marker "a)", "(b)", "c." or "d:" after a space, "(" or a line start (searched in " " +
# text: a pattern that starts with a character class is scanned twice as fast as one with "^|")
_OPTION = re.compile(r"[\s(]([a-h])[).:](?=\s)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_ARITH = re.compile(r"\d\s*[-+*/×x÷^]\s*\d|[=%$]")
_SENTENCE = re.compile(r"[.!?](?:\s|$)")
# what np.load and reading its members raise for a file that is not a saved classifier
_NOT_NPZ = (ValueError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True, slots=True)
class TaskDecision:
    """The task and what decided it: ``explicit:body``, ``explicit:header``, ``rule:TASK[i]``,
    ``classifier`` or ``fallback``; ``score`` is the classifier's top probability (1.0 for
    explicit and rule decisions)."""

    task: str
    source: str
    score: float


@functools.lru_cache(maxsize=1 << 12)
def _bucket(feature: str) -> int:
    return zlib.crc32(feature.encode()) & (DIM - 1)


@functools.lru_cache(maxsize=1 << 16)
def _word_buckets(tok: str) -> tuple[int, ...]:
    """The buckets of a word: its unigram and, past two letters, its boundary-marked trigrams
    (memoised: words repeat across requests, so hashing is mostly a dict hit)."""
    feats = [f"w:{tok}"]
    if len(tok) > 2:
        w = f"<{tok}>"
        feats += [f"c:{w[i:i + 3]}" for i in range(len(w) - 2)]
    return tuple(_bucket(f) for f in feats)


@functools.lru_cache(maxsize=1 << 16)
def _pair_bucket(a: str, b: str) -> int:
    return _bucket(f"b:{a} {b}")


_SENT_FLAGS = tuple(f"s:sent{i}" for i in range(7))
_LEN_FLAGS = tuple(f"s:len{i}" for i in range(9))


def _structure(low: str, words: int, numbers: int) -> list[str]:
    """The structural flags of lower-cased ``low`` (``words`` tokens, ``numbers`` numbers),
    repeated by weight."""
    feats: list[str] = []
    if len(set(_OPTION.findall(" " + low))) >= 3:
        feats += ["s:options"] * 4
    feats += ["s:num"] * min(numbers, 3)
    # without a digit (numbers == 0) only the [=%$] branch of _ARITH can match
    if _ARITH.search(low) if numbers else ("=" in low or "%" in low or "$" in low):
        feats += ["s:arith"] * 2
    sentences = len(_SENTENCE.findall(low))
    feats += [_SENT_FLAGS[min(sentences, 6)]] * 2
    if "\n" in low:
        head, _, body = low.strip().partition("\n")
        if len(body.split()) >= 15:
            feats += ["s:block"] * 2
    if low.rstrip().endswith("?"):
        feats.append("s:question")
    feats.append(_LEN_FLAGS[min(words // 20, 8)])
    return feats


def _parts(text: str) -> tuple[list[str], list[str]]:
    """The tokens and structural flags of ``text`` (its first :data:`MAX_CHARS` characters:
    enough to tell the task, and bounded time for huge inputs)."""
    low = text[:MAX_CHARS].lower()
    flat, numbers = _NUMBER.subn("0", low)
    toks = _TOKEN.findall(flat)
    return toks, _structure(low, len(toks), numbers)


def features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Hashed feature indices of ``text`` and their values, ``count / sqrt(total count)``."""
    toks, flags = _parts(text)
    buckets = Counter(chain.from_iterable(map(_word_buckets, toks)))
    buckets.update(map(_pair_bucket, toks, toks[1:]))
    buckets.update(map(_bucket, flags))
    idx = np.fromiter(buckets.keys(), dtype=np.int64, count=len(buckets))
    counts = np.fromiter(buckets.values(), dtype=np.float32, count=len(buckets))
    return idx, counts / np.float32(max(math.sqrt(counts.sum()), 1e-12))


def fit_model(examples: Sequence[tuple[str, str]], labels: Sequence[str], *, epochs: int = 40,
              lr: float = 5.0, l2: float = 1e-6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression by class-balanced SGD; returns ``(W, b)`` with ``W`` of shape
    ``(DIM, len(labels))``. ``examples`` are ``(text, label)`` pairs."""
    rng = np.random.default_rng(seed)
    k = len(labels)
    pos = {lab: i for i, lab in enumerate(labels)}
    data = [(features(t), pos[lab]) for t, lab in examples if lab in pos]
    freq = np.bincount([y for _, y in data], minlength=k).astype(np.float64)
    cw = np.where(freq > 0, np.sqrt(len(data) / (k * np.maximum(freq, 1))), 0.0)
    W = np.zeros((DIM, k), dtype=np.float32)
    b = np.zeros(k, dtype=np.float32)
    for epoch in range(epochs):
        step = lr / (1.0 + epoch)
        for i in rng.permutation(len(data)):
            (idx, vals), y = data[i]
            z = vals @ W[idx] + b
            p = np.exp(z - z.max())
            p /= p.sum()
            p[y] -= 1.0
            g = (step * cw[y]) * p.astype(np.float32)
            W[idx] -= np.outer(vals, g) + l2 * W[idx]
            b -= g
    return W, b


def _jsonl(path: Path, key: str) -> list[tuple[str, dict[str, Any]]]:
    """``(FILE:LINE, object)`` for each non-blank line of a JSONL file; a file that cannot be
    read or a line that is not a JSON object raises :class:`ConfigError` (``key: FILE:LINE:
    reason``, ``key`` being the config key that names the file, or empty)."""
    where = f"{key}: {path}" if key else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read file ({exc.strerror or exc})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not UTF-8 text"]) from None
    rows: list[tuple[str, dict[str, Any]]] = []
    for no, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError([f"{where}:{no}: not valid JSON ({exc.msg})"]) from None
        except RecursionError:
            raise ConfigError([f"{where}:{no}: not valid JSON (nested too deeply)"]) from None
        if not isinstance(obj, dict):
            raise ConfigError([f"{where}:{no}: must be a JSON object"])
        rows.append((f"{where}:{no}", obj))
    return rows


def _field(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError([f"{where}: '{name}' must be a non-empty string"])
    return value


def _train_inputs(path: Path, key: str) -> list[str]:
    """The ``train`` inputs of a task set (``split`` absent or ``train``; the trainer's format)."""
    out: list[str] = []
    for where, obj in _jsonl(path, key):
        text = _field(obj, "input", where)
        split = obj.get("split", "train")
        if split not in ("train", "test"):
            raise ConfigError([f"{where}: 'split' must be 'train' or 'test' (got {shown(split)})"])
        if split == "train":
            out.append(text)
    return out


def training_examples(config: Config) -> list[tuple[str, str]]:
    """(text, task) pairs: each task set's ``train`` split plus the shipped extra examples."""
    names = {t.name for t in config.tasks}
    out: list[tuple[str, str]] = []
    for i, task in enumerate(config.tasks):
        if task.dataset is not None and task.dataset.exists():
            out += [(text, task.name) for text in _train_inputs(task.dataset, f"tasks[{i}].dataset")]
    shipped = sorted(DATA_DIR.glob("*.jsonl"))
    if not shipped:  # a broken install: training without them loses the 'general' examples
        raise ConfigError([f"{DATA_DIR}: no shipped training examples (*.jsonl); the package "
                           "was installed without its data files"], "classifier")
    for path in shipped:
        for where, obj in _jsonl(path, ""):
            text, label = _field(obj, "text", where), _field(obj, "task", where)
            if label in names:
                out.append((text, label))
    return out


def classifier_path(config: Config) -> Path:
    """``classifier.path``, else ``classifier.npz`` next to the first policy file."""
    if config.classifier.path is not None:
        return config.classifier.path
    if config.policies.paths:
        return config.policies.paths[0].parent / "classifier.npz"
    return Path("classifier.npz")


def train_classifier(config: Config, path: Path | None = None, *, seed: int = 0) -> Path:
    """Train on :func:`training_examples` and save ``W``, ``b`` and the labels as ``.npz``."""
    path = path or classifier_path(config)
    labels = [t.name for t in config.tasks]
    W, b = fit_model(training_examples(config), labels, seed=seed)
    np.savez_compressed(path, W=W, b=b, labels=np.array(labels), dim=np.array(DIM))
    return path


def _npz_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """Every array of the ``.npz`` file at ``path``, or None when it is not one (``OSError``
    when it cannot be read)."""
    try:
        with path.open("rb") as fh:  # np.load leaves a file it opened itself open when it fails
            data = np.load(fh)
            if not isinstance(data, np.lib.npyio.NpzFile):
                return None
            with data:
                return {name: data[name] for name in data.files}
    except _NOT_NPZ:
        return None


def _read_model(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``W``, ``b`` and the labels saved by :func:`train_classifier`; raises ``ValueError``
    with the reason when ``path`` holds something else."""
    if path.is_dir():
        raise ValueError("is a directory, not an .npz classifier file")
    try:
        arrays = _npz_arrays(path)
    except OSError as exc:
        raise ValueError(f"cannot read file ({exc.strerror or exc})") from None
    if arrays is None:
        raise ValueError("not an .npz classifier file")
    missing = [name for name in ("W", "b", "labels") if name not in arrays]
    if missing:
        raise ValueError(f"not an .npz classifier file (no {', '.join(missing)})")
    W, b, labels = arrays["W"], arrays["b"], arrays["labels"]
    k = labels.size
    if (W.shape != (DIM, k) or b.shape != (k,) or labels.shape != (k,) or not k
            or labels.dtype.kind != "U" or W.dtype.kind != "f" or b.dtype.kind != "f"):
        raise ValueError(f"not a classifier of this version (W {W.dtype}{list(W.shape)}, "
                         f"b {b.dtype}{list(b.shape)}, labels {labels.dtype}{list(labels.shape)}; "
                         f"expected {DIM} features)")
    return W, b, [str(x) for x in labels]


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (text parts of a multi-part content joined)."""
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(str(p.get("text", "")) for p in content
                                 if isinstance(p, dict) and p.get("type") == "text")
            return ""
    return ""


class TaskClassifier:
    """Decides a request's task (see the module docstring)."""

    def __init__(self, config: Config, W: np.ndarray, b: np.ndarray, labels: Sequence[str]) -> None:
        self.tasks = tuple(t.name for t in config.tasks)
        self.min_confidence = config.classifier.min_confidence
        self.fallback = config.classifier.fallback_task
        self.rules = [(t.name, i, re.compile(p)) for t in config.tasks
                      for i, p in enumerate(t.patterns)]
        self.W, self.b, self.labels = W, b, list(labels)
        self._bias = [float(x) for x in b]
        # memoised rows of W (words and pairs repeat across requests; bounded), each led by
        # its number of features: summing the rows column-wise sums the counts too
        self._word_rows = functools.lru_cache(maxsize=1 << 16)(self._word)
        self._pair_rows = functools.lru_cache(maxsize=1 << 16)(
            lambda a, b: (1, *self._logits((_pair_bucket(a, b),))))
        self._flag_rows = functools.lru_cache(maxsize=1 << 8)(
            lambda flag: (1, *self._logits((_bucket(flag),))))

    @classmethod
    def load(cls, config: Config, path: Path | None = None) -> TaskClassifier:
        """The saved model at ``path`` (default :func:`classifier_path`); a file that is not one
        raises :class:`ConfigError` naming ``classifier.path``, the file and what is wrong."""
        path = path or classifier_path(config)
        try:
            W, b, labels = _read_model(path)
        except ValueError as exc:
            key = "classifier.path" + ("" if config.classifier.path is not None else " (default)")
            raise ConfigError([f"{key}: {path}: {exc}"], str(config.source or "config")) from None
        return cls(config, W, b, labels)

    @classmethod
    def from_config(cls, config: Config, *, seed: int = 0) -> TaskClassifier:
        """The saved model when its file exists and covers the configured tasks, else one
        trained now in memory (about a second)."""
        path = classifier_path(config)
        labels = [t.name for t in config.tasks]
        if path.exists():
            loaded = cls.load(config, path)
            if set(loaded.labels) == set(labels):
                return loaded
            log.warning("%s classifies %s, not the configured tasks %s: training one in memory "
                        "(`iapo classifier` saves it)", path, sorted(loaded.labels), sorted(labels))
        elif config.classifier.path is not None:  # set but missing: most likely a typo
            log.warning("classifier.path %s does not exist: training one in memory "
                        "(`iapo classifier` saves it)", path)
        W, b = fit_model(training_examples(config), labels, seed=seed)
        return cls(config, W, b, labels)

    def _logits(self, buckets: Sequence[int]) -> tuple[float, ...]:
        """The summed rows of ``W`` for ``buckets`` (a word's, a word pair's or a flag's)."""
        return tuple(self.W[list(buckets)].sum(axis=0, dtype=np.float64).tolist())

    def _word(self, tok: str) -> tuple[float, ...]:
        buckets = _word_buckets(tok)
        return (len(buckets), *self._logits(buckets))

    def predict(self, text: str) -> tuple[str, float]:
        """The model's top task and its probability. The logits are linear in the feature
        counts, so they are sums of memoised per-word, per-pair and per-flag rows, scaled by
        ``1 / sqrt(total count)`` (the same as ``features(text) @ W + b``, no array per call)."""
        toks, flags = _parts(text)
        rows = list(map(self._word_rows, toks))
        rows += map(self._pair_rows, toks, toks[1:])
        rows += map(self._flag_rows, flags)
        count, *sums = map(sum, zip(*rows))  # every text has a length flag: rows is not empty
        scale = 1.0 / math.sqrt(count)
        z = [col * scale + bias for col, bias in zip(sums, self._bias)]
        top_z = max(z)
        total = sum([math.exp(v - top_z) for v in z])
        return self.labels[z.index(top_z)], 1.0 / total

    def classify(self, messages: Sequence[Mapping[str, Any]], hints: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> TaskDecision:
        """Decide the task of a request (explicit → rules → model → fallback)."""
        explicit, source = None, ""
        if hints and "task" in hints:
            explicit, source = hints["task"], "explicit:body"
        elif headers is not None:
            value = headers.get("x-iapo-task")
            if value is None and not isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
                value = next((v for k, v in headers.items() if k.lower() == "x-iapo-task"), None)
            if value is not None:
                explicit, source = value.strip(), "explicit:header"
        if explicit is not None:
            if explicit not in self.tasks:
                param = "iapo.task" if source == "explicit:body" else "x-iapo-task"
                known = ", ".join(self.tasks)
                raise InvalidRequest(f"unknown task {shown(explicit)} (known: {known})", param=param)
            return TaskDecision(explicit, source, 1.0)
        text = last_user_text(messages)
        for task, i, rule in self.rules:
            if rule.search(text):
                return TaskDecision(task, f"rule:{task}[{i}]", 1.0)
        task, prob = self.predict(text)
        if prob >= self.min_confidence and task in self.tasks:
            return TaskDecision(task, "classifier", prob)
        return TaskDecision(self.fallback, "fallback", prob)
