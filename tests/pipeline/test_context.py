from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.config import Config
from proxy.errors import InvalidRequest
from proxy.pipeline.classify import TaskClassifier, train_classifier
from proxy.pipeline.weights import resolve_weights

HELDOUT = Path(__file__).resolve().parents[1] / "data" / "classifier_heldout.jsonl"


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_heldout_accuracy_at_least_95_percent(classifier: TaskClassifier) -> None:
    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    assert len(rows) >= 200 and {r["task"] for r in rows} == {"math", "multiple_choice",
                                                               "summarize", "general"}
    right = sum(classifier.classify(_user(r["text"])).task == r["task"] for r in rows)
    assert right / len(rows) >= 0.95


def test_classifier_is_fast(classifier: TaskClassifier) -> None:
    text = "A shop sells 12 pens for $3 each and 4 books at $9. What is the total?"
    classifier.classify(_user(text))
    start = time.perf_counter()
    for _ in range(200):
        classifier.classify(_user(text))
    assert (time.perf_counter() - start) / 200 < 1e-3


def test_explicit_task_wins_and_unknown_is_400(classifier: TaskClassifier) -> None:
    d = classifier.classify(_user("What is 2 + 2?"), {"task": "general"})
    assert (d.task, d.source) == ("general", "explicit:body")
    d = classifier.classify(_user("hello"), None, {"X-IAPO-Task": "math"})
    assert (d.task, d.source) == ("math", "explicit:header")
    with pytest.raises(InvalidRequest) as err:
        classifier.classify(_user("hi"), {"task": "poetry"})
    assert err.value.param == "iapo.task" and "poetry" in err.value.message


def test_configured_rule_decides_before_the_model(config: Config) -> None:
    tasks = tuple(replace(t, patterns=(r"(?i)\bhaiku\b",)) if t.name == "summarize" else t
                  for t in config.tasks)
    clf = TaskClassifier.from_config(replace(config, tasks=tasks))
    d = clf.classify(_user("Write a haiku about frogs"))
    assert (d.task, d.source) == ("summarize", "rule:summarize[0]")


def test_low_confidence_falls_back_to_general(config: Config, classifier: TaskClassifier) -> None:
    strict = TaskClassifier(replace(config, classifier=replace(config.classifier, min_confidence=1.0)),
                            classifier.W, classifier.b, classifier.labels)
    d = strict.classify(_user("Solve 3x + 1 = 10"))
    assert (d.task, d.source) == ("general", "fallback") and d.score < 1.0


def test_train_save_and_load_round_trip(config: Config, tmp_path: Path) -> None:
    path = train_classifier(config, tmp_path / "clf.npz")
    clf = TaskClassifier.load(config, path)
    q = "Which is a fruit?\nA) carrot\nB) apple\nC) potato\nD) onion"
    assert clf.classify(_user(q)).task == "multiple_choice"


# -- weights ------------------------------------------------------------------------------------

def test_weights_order_body_header_profile_alias_key_default(config: Config) -> None:
    r = resolve_weights(config, {"weights": {"accuracy": 1, "cost": 0.2}},
                        {"x-iapo-weights": "accuracy=5"}, "sim-1", "frugal")
    assert r.source == "body" and r.weights["cost"] == 0.2 and r.weights["helpfulness"] == 0.0
    assert set(r.weights) == set(config.all_objectives)
    r = resolve_weights(config, {"profile": "frugal"}, {"x-iapo-weights": "accuracy=1, cost=0.5"})
    assert r.source == "header" and r.weights["cost"] == 0.5
    r = resolve_weights(config, {"profile": "quality"}, {}, "iapo-frugal", "frugal")
    assert r.source == "profile:quality"
    r = resolve_weights(config, {}, {}, "iapo-frugal", "quality")
    assert r.source == "model:frugal" and r.weights["cost"] == 1.0
    assert resolve_weights(config, None, {}, "sim-1", "quality").source == "key:quality"
    r = resolve_weights(config, None, {}, "sim-1")
    assert r.source == "default:balanced" and r.weights == {**config.profiles["balanced"]}


@pytest.mark.parametrize("hints, headers, needle", [
    ({"weights": {"acuracy": 1}}, {}, "unknown objective"),
    ({"weights": {"accuracy": -1}}, {}, ">= 0"),
    ({"weights": {"accuracy": math.nan}}, {}, ">= 0"),
    ({"weights": {"accuracy": 0, "cost": 0}}, {}, "all be zero"),
    ({"weights": {"accuracy": "high"}}, {}, "must be a number"),
    ({"weights": {}}, {}, "non-empty"),
    ({}, {"x-iapo-weights": "accuracy=1,cost=-2"}, ">= 0"),
    ({}, {"x-iapo-weights": "accuracy"}, "objective=weight"),
    ({"profile": "cheapest"}, {}, "unknown profile"),
])
def test_invalid_weights_are_400_naming_the_problem(config: Config, hints: dict, headers: dict,
                                                   needle: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        resolve_weights(config, hints, headers, "sim-1")
    assert err.value.status == 400 and needle in err.value.message


def test_unknown_alias_profile_is_400(config: Config) -> None:
    with pytest.raises(InvalidRequest) as err:
        resolve_weights(config, {}, {}, "iapo-nosuch")
    assert err.value.param == "model"
