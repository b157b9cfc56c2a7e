from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "classify": {"DIM", "TaskClassifier", "TaskDecision", "classifier_path", "features",
                 "fit_model", "last_user_text", "train_classifier", "training_examples"},
    "extract": {"Extractor", "extract_letter", "extract_number", "extractor_for",
                "make_regex_extractor", "normalize_number", "normalize_text"},
    "fanout": {"STRATEGIES", "FanOut", "FanoutCounts", "FanoutRun", "Sample", "choose_strategy",
               "offset_seed"},
    "metrics": {"PipelineMetrics"},
    "rewrite": {"Rewritten", "apply_prompt", "wrap_text"},
    "scorers": {"DEFAULT_RUBRIC", "NEUTRAL", "ScoreReport", "Scorers", "best_index",
                "parse_judge_score", "utility"},
    "service": {"KEEP_ALIVE", "PipelineService", "is_keep_alive"},
    "vote": {"MajorityVote", "majority"},
    "weights": {"MODEL_ALIAS_PREFIX", "ResolvedWeights", "parse_weights_header", "resolve_weights"},
}


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_exports(name: str) -> None:
    mod = importlib.import_module(f"proxy.pipeline.{name}")
    assert set(mod.__all__) == SURFACE[name]
    assert all(hasattr(mod, attr) for attr in mod.__all__)
