from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.config import Config, ObjectiveScorer, PromptConfig, RewriteConfig
from proxy.pipeline.rewrite import apply_prompt
from proxy.pipeline.scorers import Scorers, best_index, parse_judge_score, utility

from proxy.errors import UpstreamError

CONVO = [{"role": "system", "content": "Be nice."},
         {"role": "user", "content": "first"},
         {"role": "assistant", "content": "ok"},
         {"role": "user", "content": "What is 2+2?"}]


async def test_prompt_applies_system_suffix_examples_and_keeps_others(fake, config: Config) -> None:
    prompt = PromptConfig(id="p", system="SYS", suffix=" END", examples=(("q1", "a1"),))
    out = await apply_prompt(prompt, CONVO, config, fake(lambda b: ["unused"]))
    assert out.messages[0] == {"role": "system", "content": "SYS\n\nBe nice."}
    assert out.messages[1:3] == CONVO[1:3]
    assert out.messages[3:5] == [{"role": "user", "content": "q1"},
                                 {"role": "assistant", "content": "a1"}]
    assert out.messages[5] == {"role": "user", "content": "What is 2+2? END"}
    assert not out.rewrite_failed and CONVO[3]["content"] == "What is 2+2?"  # input untouched


async def test_template_and_system_inserted_when_absent(fake, config: Config) -> None:
    prompt = PromptConfig(id="t", system="S", template="Q: {input}\nA:")
    out = await apply_prompt(prompt, [{"role": "user", "content": "hi"}], config,
                             fake(lambda b: ["x"]))
    assert out.messages == [{"role": "system", "content": "S"},
                            {"role": "user", "content": "Q: hi\nA:"}]


async def test_rewrite_uses_prompter_and_counts_usage(fake, config: Config) -> None:
    up = fake(lambda b: ["REWRITTEN"])
    out = await apply_prompt(config.prompts["rewrite"], CONVO, config, up)
    assert out.messages[-1]["content"] == "REWRITTEN" and out.messages[:3] == CONVO[:3]
    assert "What is 2+2?" in up.calls[0]["messages"][0]["content"]
    assert out.usage.total_tokens > 0 and out.cost_usd > 0 and not out.rewrite_failed


@pytest.mark.parametrize("respond, delay", [
    (lambda b: UpstreamError("prompter down"), None),
    (lambda b: [""], None),
    (lambda b: ["late"], lambda b: 5.0),
])
async def test_failing_prompter_keeps_original_and_reports(fake, config: Config, respond, delay) -> None:
    prompt = PromptConfig(id="rw", suffix="!", rewrite=RewriteConfig("sim-1", "Rewrite: {input}",
                                                                       timeout_s=0.05))
    out = await apply_prompt(prompt, CONVO, config, fake(respond, delay))
    assert out.rewrite_failed and out.messages[-1]["content"] == "What is 2+2?!"
    assert out.rewrite_error


@pytest.mark.parametrize("text, want", [
    ("Score: 7", 7), ("score=10", 10), ("I'd give it 7/10.", 7), ("**8**", 8),
    ("Overall quite good. 9", 9), ("Score: 1", 1), ("Score: 0. Actually 6", 6),
    ("I cannot rate this.", None), ("Score: ten", None), ("Score: N/A", None), ("42", None),
])
def test_parse_judge_score(text: str, want: int | None) -> None:
    got = parse_judge_score(text)
    assert got == (None if want is None else pytest.approx((want - 1) / 9))


def _with_scorer(config: Config, name: str, *parts: ObjectiveScorer) -> Config:
    return replace(config, scorers={**config.scorers, name: tuple(parts)})


async def test_deterministic_scorer_best_sample_follows_the_weights(fake, config: Config) -> None:
    cfg = _with_scorer(config, "det",
                       ObjectiveScorer("brevity", "length", {"target_tokens": 3}),
                       ObjectiveScorer("helpfulness", "keywords",
                                       {"keywords": ["because", "example"]}))
    texts = ["Yes.", "Yes, because for example the data shows it clearly and at length."]
    report = await Scorers(cfg, fake(lambda b: [])).score("det", "q", texts)
    brief = {"brevity": 1.0, "helpfulness": 0.0, "cost": 0.0}
    helpful = {"brevity": 0.0, "helpfulness": 1.0, "cost": 0.0}
    u_brief = [utility(s, brief, 0.0, cfg.cost_unit_usd) for s in report.scores]
    u_help = [utility(s, helpful, 0.0, cfg.cost_unit_usd) for s in report.scores]
    assert best_index(u_brief) == 0 and best_index(u_help) == 1
    assert report.scores[0]["brevity"] == 1.0 and report.scores[1]["helpfulness"] == 1.0


def test_utility_subtracts_cost_and_ties_go_low() -> None:
    w = {"accuracy": 1.0, "cost": 2.0}
    assert utility({"accuracy": 0.5}, w, 0.01, 0.01) == pytest.approx(-1.5)
    assert utility({"accuracy": None}, {"accuracy": 1.0}, 0.0, 0.01) == 0.5
    assert best_index([0.3, 0.7, 0.7]) == 1


async def test_builtin_regex_and_json_scorers(fake, config: Config) -> None:
    cfg = _with_scorer(config, "fmt", ObjectiveScorer("accuracy", "regex", {"pattern": r"^\d+\b"}),
                       ObjectiveScorer("helpfulness", "json", {}))
    rep = await Scorers(cfg, fake(lambda b: [])).score("fmt", "q", ["12 apples", '```json\n{"a": 1}\n```'])
    assert rep.scores == [{"accuracy": 1.0, "helpfulness": 0.0},
                          {"accuracy": 0.0, "helpfulness": 1.0}]


async def test_junk_judge_is_neutral_and_counted(fake, config: Config) -> None:
    replies = iter(["Score: 9", "I cannot rate this.", "Score: ten"])
    up = fake(lambda b: [next(replies)])
    cfg = _with_scorer(config, "j", ObjectiveScorer("helpfulness", "judge", {"model": "sim-1"}))
    rep = await Scorers(cfg, up).score("j", "Explain tides", ["a", "b", "c"])
    assert rep.scores[0]["helpfulness"] == pytest.approx(8 / 9)
    assert rep.scores[1]["helpfulness"] is None and rep.scores[2]["helpfulness"] is None
    assert rep.judge_errors == 2 and rep.usage.total_tokens == 3 * 15
    assert rep.cost_usd == pytest.approx(0.003)
    w = {"helpfulness": 1.0}
    assert utility(rep.scores[1], w, 0, 1) == 0.5
    assert "Explain tides" in up.calls[0]["messages"][0]["content"]


async def test_judge_call_is_bounded_by_max_tokens(fake, config: Config) -> None:
    up = fake(lambda b: ["Score: 7"])
    for params, want in (({"model": "sim-1", "max_tokens": 64}, 64), ({"model": "sim-1"}, None)):
        cfg = _with_scorer(config, "j", ObjectiveScorer("helpfulness", "judge", params))
        rep = await Scorers(cfg, up).score("j", "q", ["a"])
        assert rep.scores == [{"helpfulness": pytest.approx(6 / 9)}]
        assert up.calls[-1].get("max_tokens") == want and up.calls[-1]["temperature"] == 0


async def test_failing_judge_counts_error_not_exception(fake, config: Config) -> None:
    cfg = _with_scorer(config, "j", ObjectiveScorer("helpfulness", "judge", {"model": "sim-1"}))
    rep = await Scorers(cfg, fake(lambda b: UpstreamError("judge down"))).score("j", "q", ["a"])
    assert rep.judge_errors == 1 and rep.scores == [{"helpfulness": None}]


async def test_http_reward_model(fake, config: Config, sim) -> None:
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "proxy/data/tasks/math.jsonl"
    item = json.loads(path.read_text().splitlines()[0])
    url = sim.url + "/reward"
    cfg = _with_scorer(config, "rm", ObjectiveScorer("accuracy", "http", {"url": url}))
    scorers = Scorers(cfg, fake(lambda b: []))
    try:
        rep = await scorers.score("rm", item["input"], [f"The answer is {item['answer']}.",
                                                        "The answer is -1."])
        bad = _with_scorer(config, "rm", ObjectiveScorer("accuracy", "http",
                                                         {"url": sim.url + "/nope"}))
        bad_scorers = Scorers(bad, fake(lambda b: []))
        rep2 = await bad_scorers.score("rm", "q", ["x"])
        await bad_scorers.close()
    finally:
        await scorers.close()
    assert [s["accuracy"] for s in rep.scores] == [1.0, 0.0]
    assert rep2.scores == [{"accuracy": None}] and rep2.errors == 1
