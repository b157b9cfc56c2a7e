"""The classifier's errors: short messages for odd task hints."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from proxy.config import Config
from proxy.errors import InvalidRequest
from proxy.pipeline.classify import DIM, TaskClassifier

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
