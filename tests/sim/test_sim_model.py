"""The response model without HTTP: features, determinism, styles, prompter, judge, summaries."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from proxy.sim.features import detect_features, style_of
from proxy.sim.model import SimModel
from proxy.sim.server import load_model
from proxy.sim.settings import DEFAULT_TASKS_DIR

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
META = ("Rewrite the following request so that a language model answers it as accurately as "
        "possible. Keep every fact and number. Return only the rewritten request.\n\nRequest:\n{input}")
JUDGE = ("Rate the response to the request below on a scale of 1 to 10.\n\nRequest:\n{q}\n\n"
         "Response:\n{r}\n\nReply with 'Score: <n>'.")


@pytest.fixture(scope="module")
def model() -> SimModel:
    return load_model(DEFAULT_TASKS_DIR)


def user(text: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": text}]


def test_config_prompts_map_to_the_intended_features() -> None:
    prompts = {p["id"]: p for p in yaml.safe_load(CONFIG.read_text())["prompts"]}

    def feats(pid: str):
        p = prompts[pid]
        msgs = [{"role": "system", "content": p["system"]}] if "system" in p else []
        for ex in p.get("examples", []):
            msgs += [{"role": "user", "content": ex["input"]}, {"role": "assistant", "content": ex["output"]}]
        return detect_features(msgs + [{"role": "user", "content": "Q?" + p.get("suffix", "")}])

    assert style_of(feats("plain")) == "plain" and not feats("plain").active()
    assert feats("cot").reasoning and style_of(feats("cot")) == "reasoning"
    ed = feats("expert_direct")
    assert ed.expert and ed.double_check and ed.direct and style_of(ed) == "direct"
    assert feats("fewshot").fewshot and feats("mc_letter").direct and feats("mc_cot").reasoning
    assert feats("brief").brief


def test_temperature_zero_is_deterministic(model: SimModel) -> None:
    item = model.index.items[0]
    outs = {tuple(model.respond(user(item.input), 0.0, np.random.default_rng(s), n=3)) for s in range(5)}
    assert len(outs) == 1 and len(set(next(iter(outs)))) == 1


def test_reply_styles_follow_the_prompt(model: SimModel) -> None:
    item = next(it for it in model.index.items if it.task == "math")
    rng = np.random.default_rng(0)
    direct = model.respond(user(item.input + "\n\nReply with only the final answer, no explanation."), 1.0, rng, n=20)
    assert sum(re.fullmatch(r"[\d./]+", d) is not None for d in direct) >= 18
    cot = model.respond(user(item.input, "Think step by step."), 1.0, rng, n=20)
    assert sum(bool(re.search(r"The answer is [\d./]+\.$", c)) for c in cot) >= 18
    mc = next(it for it in model.index.items if it.task == "multiple_choice")
    letters = model.respond(user(mc.input + "\n\nAnswer with only the letter of the correct option."), 1.0, rng, n=20)
    assert sum(x in "ABCD" and len(x) == 1 for x in letters) >= 18


def test_plain_prompt_is_unparsable_more_often(model: SimModel) -> None:
    items = [it for it in model.index.items if it.task == "math"][:150]
    rng = np.random.default_rng(1)

    def share(suffix: str) -> float:
        outs = [o for it in items for o in model.respond(user(it.input + suffix), 1.0, rng, n=4)]
        return sum(not re.search(r"\d", o) for o in outs) / len(outs)

    plain, direct = share(""), share("\n\nReply with only the final answer, no explanation.")
    assert plain > 0.06 and direct < 0.04 and plain > 2 * direct


def test_prompter_keeps_the_question_and_adds_instructions(model: SimModel) -> None:
    item = model.index.items[3]
    rng = np.random.default_rng(2)
    rewrites = model.respond(user(META.format(input=item.input)), 1.0, rng, n=10)
    for r in rewrites:
        assert r.startswith(item.input) and len(r) > len(item.input) + 10
        assert model.find_item(user(r)) is item
    assert len(set(rewrites)) > 1  # random instructions


def test_judge_scores_follow_quality(model: SimModel) -> None:
    rng = np.random.default_rng(3)
    items = [it for it in model.index.items if it.task == "math"][:60]
    scores: dict[bool, list[int]] = {True: [], False: []}
    junk = 0
    for it in items:
        for correct in (True, False):
            resp = f"The answer is {it.answer if correct else it.distractors[0]}."
            reply = model.respond(user(JUDGE.format(q=it.input, r=resp)), 1.0, rng)[0]
            m = re.fullmatch(r"Score: (\d+)", reply)
            if m is None:
                junk += 1
                continue
            scores[correct].append(int(m.group(1)))
    assert np.mean(scores[True]) > 8 and np.mean(scores[False]) < 3
    assert 0 <= junk <= 12


def test_summaries_cover_key_points_and_brief_is_shorter(model: SimModel) -> None:
    items = [it for it in model.index.items if it.task == "summarize"][:40]
    rng = np.random.default_rng(4)
    cov: dict[str, list[float]] = {"full": [], "brief": []}
    length: dict[str, list[int]] = {"full": [], "brief": []}
    for it in items:
        for kind, suffix in (("full", ""), ("brief", "\n\nBe brief: answer in one or two sentences.")):
            out = model.respond(user(it.input + suffix), 1.0, rng)[0]
            cov[kind].append(model.quality(it.input, out))
            length[kind].append(len(out))
    assert 0.3 < np.mean(cov["full"]) < 0.95
    assert np.mean(cov["brief"]) < np.mean(cov["full"]) and np.mean(length["brief"]) < np.mean(length["full"])


def test_unknown_prompts_get_a_topical_reply(model: SimModel) -> None:
    out = model.respond(user("How should I water tomato seedlings in summer?"), 1.0, np.random.default_rng(5))[0]
    assert "tomato" in out.lower() and len(out.split()) > 5


def test_temperature_trades_accuracy_for_diversity(model: SimModel) -> None:
    items = [it for it in model.index.items if it.task == "math"][:100]
    rng = np.random.default_rng(6)

    def stats(t: float) -> tuple[float, float]:
        acc, distinct = [], []
        for it in items:
            outs = model.respond(user(it.input + "\n\nReply with only the final answer, no explanation."), t, rng, n=8)
            acc.append(np.mean([o == it.answer for o in outs]))
            distinct.append(len(set(outs)))
        return float(np.mean(acc)), float(np.mean(distinct))

    (a_low, d_low), (a_high, d_high) = stats(0.5), stats(1.5)
    assert a_low > a_high + 0.05 and d_high > d_low


def test_judge_scores_track_summary_coverage(model: SimModel) -> None:
    rng = np.random.default_rng(7)
    items = [it for it in model.index.items if it.task == "summarize"][:60]
    qualities, scores = [], []
    for i, it in enumerate(items):
        k = i % (len(it.key_points) + 1)
        summary = " ".join(p + "." for p in it.key_points[:k]) or "Something happened."
        reply = model.respond(user(JUDGE.format(q=it.input, r=summary)), 1.0, rng)[0]
        m = re.fullmatch(r"Score: (\d+)", reply)
        if m:
            qualities.append(k / len(it.key_points))
            scores.append(int(m.group(1)))
    assert len(scores) >= 50 and np.corrcoef(qualities, scores)[0, 1] > 0.8


def test_public_surface() -> None:
    import proxy.sim.features as features
    import proxy.sim.model as model_mod
    import proxy.sim.server as server
    import proxy.sim.tasks as tasks

    assert set(model_mod.__all__) == {"SimModel", "count_tokens"}
    assert {"SimServer", "SimStats", "create_sim_app", "load_model"} <= set(server.__all__)
    assert {"TaskItem", "TaskIndex", "TaskFormatError", "load_tasks"} <= set(tasks.__all__)
    for mod in (features, model_mod, server, tasks):
        assert all(hasattr(mod, name) for name in mod.__all__)
