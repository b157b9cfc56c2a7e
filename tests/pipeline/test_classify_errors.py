"""The classifier's errors: short messages for odd task hints, and a saved model or training file
that cannot be used names the config key, the file (and line) and what is wrong."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxy.config import Config, ConfigError
from proxy.errors import InvalidRequest
from proxy.pipeline.classify import DIM, TaskClassifier, training_examples

USER = [{"role": "user", "content": "hello"}]


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def tiny(config: Config) -> TaskClassifier:
    """A classifier with an all-zero model (no training: these tests only look at errors)."""
    labels = [t.name for t in config.tasks]
    return TaskClassifier(config, np.zeros((DIM, len(labels)), np.float32),
                          np.zeros(len(labels), np.float32), labels)


@pytest.mark.parametrize("task", [_nested(1000), "x" * 1_000_000, {"k" * 10_000: [1] * 10_000}])
def test_an_unknown_task_hint_gives_a_short_message(tiny: TaskClassifier, task: Any) -> None:
    with pytest.raises(InvalidRequest) as err:
        tiny.classify(USER, hints={"task": task})
    assert err.value.param == "iapo.task"
    assert err.value.message.startswith("unknown task ") and len(err.value.message) < 300


def test_an_unknown_task_header_gives_a_short_message(tiny: TaskClassifier) -> None:
    with pytest.raises(InvalidRequest) as err:
        tiny.classify(USER, headers={"x-iapo-task": "y" * 8000})
    assert err.value.param == "x-iapo-task" and len(err.value.message) < 300


def _with_classifier_path(config: Config, path: Path) -> Config:
    return replace(config, classifier=replace(config.classifier, path=path))


def test_a_folder_as_classifier_path_is_named(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        TaskClassifier.from_config(_with_classifier_path(config, tmp_path))
    assert err.value.problems == [f"classifier.path: {tmp_path}: is a directory, not an .npz classifier file"]


@pytest.mark.parametrize("content", [b"server: {port: 1}\n", b"", b"PK\x03\x04 not really a zip"])
def test_a_file_that_is_not_an_npz_is_named(config: Config, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "clf.npz"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        TaskClassifier.from_config(_with_classifier_path(config, path))
    [problem] = err.value.problems
    assert problem.startswith(f"classifier.path: {path}: not an .npz classifier file")


def test_an_npz_of_other_arrays_or_shapes_is_named(config: Config, tmp_path: Path) -> None:
    labels = [t.name for t in config.tasks]
    single, other, small = tmp_path / "a.npy", tmp_path / "b.npz", tmp_path / "c.npz"
    np.save(single, np.zeros(3))
    np.savez(other, x=np.zeros(3))
    np.savez(small, W=np.zeros((10, len(labels))), b=np.zeros(len(labels)), labels=np.array(labels))
    for path, reason in [(single, "not an .npz classifier file"),
                         (other, "not an .npz classifier file (no W, b, labels)"),
                         (small, "not a classifier of this version")]:
        with pytest.raises(ConfigError) as err:
            TaskClassifier.load(_with_classifier_path(config, path))
        assert err.value.problems[0].startswith(f"classifier.path: {path}: {reason}")


def _with_dataset(config: Config, path: Path) -> Config:
    return replace(config, tasks=(replace(config.tasks[0], dataset=path), *config.tasks[1:]))


@pytest.mark.parametrize(("lines", "reason"), [
    ('{"input": "What is 1 + 1?"}\n\n{"input": "x", broken\n', "3: not valid JSON (Expecting property name"),
    ('[1, 2]\n', "1: must be a JSON object"),
    ('{"input": ""}\n', "1: 'input' must be a non-empty string"),
    ('{"input": "q", "split": "dev"}\n', "1: 'split' must be 'train' or 'test' (got 'dev')"),
    ("[" * 100_000 + "\n", "1: not valid JSON (nested too deeply)"),
])
def test_a_bad_task_set_line_names_file_and_line(config: Config, tmp_path: Path, lines: str,
                                                 reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(lines, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        training_examples(_with_dataset(config, path))
    [problem] = err.value.problems
    assert problem.startswith(f"tasks[0].dataset: {path}:{reason}")


def test_a_task_set_that_is_not_utf8_is_named(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"input": "\xff"}\n')
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.dataset: .*bad\.jsonl: not UTF-8 text"):
        training_examples(_with_dataset(config, path))


def test_good_task_sets_still_train(config: Config) -> None:
    examples = training_examples(config)
    assert {task for _, task in examples} == {t.name for t in config.tasks}


def test_missing_shipped_examples_are_an_error(config: Config, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("proxy.pipeline.classify.DATA_DIR", tmp_path / "data")
    with pytest.raises(ConfigError, match=r"data: no shipped training examples \(\*\.jsonl\)"):
        training_examples(config)


def test_a_missing_classifier_path_is_logged_and_trained_in_memory(
        config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "typo.npz"
    with caplog.at_level("WARNING", logger="proxy.pipeline.classify"):
        clf = TaskClassifier.from_config(_with_classifier_path(config, missing))
    assert sorted(clf.labels) == sorted(t.name for t in config.tasks)
    assert [r.getMessage() for r in caplog.records] == [
        f"classifier.path {missing} does not exist: training one in memory (`iapo classifier` saves it)"]
