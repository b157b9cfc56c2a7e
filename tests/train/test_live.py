"""Live training (``iapo train``) against the simulated upstream over real HTTP: policy
validates and loads, kill -9 and resume from the cache, bad input, and the trained policy served
by the real proxy app beats N=1 with the default prompt on held-out questions."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import yaml

from proxy.cli import main
from proxy.config import load_config
from proxy.pipeline.extract import extract_number
from proxy.policy.load import load_policy
from proxy.sim.server import SIM_STATE, SimServer
from proxy.sim.settings import SimSettings
from proxy.train.cache import SampleCache
from proxy.train.live import abstain_subset_credit
from proxy.train.registry import LEARNERS

REPO = Path(__file__).resolve().parents[2]
PROMPTS = "plain,cot,expert_direct,fewshot"


def write_config(tmp: Path, *, api_base: str | None = None, math_dataset: Path | None = None,
                 policy: Path | None = None, **simulator: float) -> Path:
    """The repo's config with zero simulator latency and absolute paths, written under ``tmp``."""
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["simulator"].update(ttft_s=0.0, tpot_s=0.0, **simulator)
    for task in data["tasks"]:
        if "dataset" in task:
            task["dataset"] = str(REPO / task["dataset"])
        if task["name"] == "math" and math_dataset is not None:
            task["dataset"] = str(math_dataset)
    if api_base is not None:
        data["models"][0]["api_base"] = api_base
    data["policies"]["paths"] = [str(policy or tmp / "policy.yaml")]
    data["classifier"] = {**data.get("classifier", {}), "path": str(REPO / "policies" / "classifier.npz")}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train_argv(config: Path, out: Path, cache: Path, *extra: str, budget: int = 600) -> list[str]:
    return ["train", "--config", str(config), "--task", "math", "--budget", str(budget),
            "--prompts", PROMPTS, "--n-max", "8", "--cache", str(cache), "--out", str(out),
            "--quiet", *extra]


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimSettings(seed=0, ttft_s=0.0, tpot_s=0.0))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _cached_samples(cache: Path) -> int:
    return sum(1 for r in SampleCache(cache).records.values() if "text" in r)


def _without_date(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    doc["provenance"].pop("date")
    doc.pop("version")
    doc.pop("id")  # the --out file's stem
    return doc


# -- estimator -----------------------------------------------------------------------------------
def _brute_credit(sub: tuple[int, ...]) -> float:
    votes = [s for s in sub if s >= 0]
    if not votes:
        return 0.0
    counts = {a: votes.count(a) for a in set(votes)}
    top = max(counts.values())
    tied = [a for a, c in counts.items() if c == top]
    return 0.0 if 0 not in tied else (1.0 if len(tied) == 1 else 0.5)


def test_subset_credit_with_abstentions_is_exact() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 8))
        s = rng.integers(-1, 4, size=n)
        got = abstain_subset_credit(s[None], n)[0]
        want = [np.mean([_brute_credit(c) for c in itertools.combinations(s.tolist(), k)])
                for k in range(1, n + 1)]
        np.testing.assert_allclose(got, want, err_msg=str(s))


# -- training, validation, cache reuse -----------------------------------------------------------
async def test_train_writes_valid_policy_and_reruns_from_cache(tmp_path: Path, sim: SimServer) -> None:
    config = write_config(tmp_path, api_base=sim.url)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    assert await asyncio.to_thread(main, train_argv(config, out, cache)) == 0
    policy = load_policy(out, load_config(config))
    assert {c.profile for c in policy.contexts} == {"balanced", "quality", "frugal"}
    assert policy.provenance.algorithm == "psst" and 0 < policy.provenance.budget.samples <= 600
    assert policy.provenance.budget.cost_usd > 0 and policy.provenance.budget.tokens > 0
    # the parameters as used: live answers cannot be pooled, so reuse=auto ran as subsets
    params = policy.provenance.params
    assert params["reuse"] == "subsets" and not {"pull_n", "settle", "consensus", "revisit"} & params.keys()
    for ctx in policy.contexts:
        est = ctx.estimate(ctx.action)
        assert est is not None and "utility" in est.ci and 0 <= est.means["accuracy"] <= 1
    assert main(["policy", "validate", "--config", str(config), str(out)]) == 0
    first = sim.stats.requests
    assert first == policy.provenance.budget.samples == _cached_samples(cache)

    # the same command again: every sample from the cache, the same policy
    again = tmp_path / "again.yaml"
    assert await asyncio.to_thread(main, train_argv(config, again, cache)) == 0
    assert sim.stats.requests == first and _without_date(again) == _without_date(out)

    # another learner and one profile reuse the cached draws: fewer calls than samples
    other = tmp_path / "ucb.yaml"
    assert await asyncio.to_thread(main, train_argv(config, other, cache, "--algorithm", "uniform",
                                                   "--profiles", "quality")) == 0
    used = load_policy(other, load_config(config)).provenance.budget.samples
    assert sim.stats.requests - first < used


async def test_kill_and_resume_spends_nothing_twice(tmp_path: Path, sim: SimServer) -> None:
    config = write_config(tmp_path, api_base=sim.url)
    ref, cache_ref = tmp_path / "ref.yaml", tmp_path / "cache-ref"
    assert await asyncio.to_thread(main, train_argv(config, ref, cache_ref)) == 0
    total = yaml.safe_load(ref.read_text())["provenance"]["budget"]["samples"]

    # a run in a subprocess, killed with SIGKILL part-way (the simulator slowed for it)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    state = sim.app[SIM_STATE]
    state.settings = replace(state.settings, ttft_s=0.01)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", *train_argv(config, out, cache, "--concurrency", "2"),
        cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(3000):
            if (cache / "samples.jsonl").exists() and _cached_samples(cache) >= 120:
                break
            assert proc.returncode is None, "the training subprocess ended before it was killed"
            await asyncio.sleep(0.01)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    cached = _cached_samples(cache)
    assert 120 <= cached < total

    # resume (another --concurrency: it does not change what is drawn)
    state.settings = replace(state.settings, ttft_s=0.0)
    sim.stats.reset()
    assert await asyncio.to_thread(main, train_argv(config, out, cache, "--concurrency", "16")) == 0
    assert sim.stats.requests == total - cached
    assert _without_date(out) == _without_date(ref)


def test_every_learner_runs_live_and_writes_a_valid_policy(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    cfg = load_config(config)
    for name in LEARNERS:
        out = tmp_path / f"{name}.yaml"
        argv = train_argv(config, out, tmp_path / "cache", "--algorithm", name, "--n-max", "4", budget=300)
        assert main(argv) == 0, name
        policy = load_policy(out, cfg)
        assert policy.provenance.algorithm == name and len(policy.contexts) == 3


def test_transient_upstream_faults_are_retried_and_change_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    for d, faults in ((clean, {}), (faulty, {"error_rate": 0.04, "drop_rate": 0.02, "malformed_rate": 0.02})):
        d.mkdir()
        config = write_config(d, **faults)
        assert main(train_argv(config, d / "policy.yaml", d / "cache", budget=300)) == 0
    clean_out, faulty_out = capsys.readouterr().out.split("wrote")[:2]
    assert " 0 retries" in clean_out and " 0 retries" not in faulty_out
    assert _without_date(faulty / "policy.yaml") == _without_date(clean / "policy.yaml")


def test_cost_limit_stops_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    assert main(train_argv(config, out, cache, "--max-cost-usd", "0.005")) == 1
    err = capsys.readouterr().err
    assert "dollar limit $0.005 was reached" in err and "nothing written" in err
    assert not out.exists() and 0 < _cached_samples(cache) < 600


# -- bad input: exit 2, nothing written ---------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("case", ["unknown_task", "no_references", "bad_line", "small_budget",
                                  "unwritable_out", "unreachable", "unknown_profile"])
def test_bad_input_exits_2_and_writes_nothing(case: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad_set = tmp_path / "math_bad.jsonl"
    lines = (REPO / "proxy/data/tasks/math.jsonl").read_text().splitlines()[:5]
    lines[2] = '{"input": "What is 2 + 2?", "answer": "four"}'
    bad_set.write_text("\n".join(lines) + "\n")
    api = f"http://127.0.0.1:{_closed_port()}/v1" if case == "unreachable" else None
    config = write_config(tmp_path, api_base=api, math_dataset=bad_set if case == "bad_line" else None)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    argv = train_argv(config, out, cache, budget=3 if case == "small_budget" else 600)
    task = {"unknown_task": "nope", "no_references": "summarize"}.get(case)
    if task:
        argv[argv.index("--task") + 1] = task
    if case == "unwritable_out":
        out = tmp_path / "missing" / "policy.yaml"
        argv[argv.index("--out") + 1] = str(out)
    if case == "unknown_profile":
        argv += ["--profiles", "quality,thrifty"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = {
        "unknown_task": "unknown task 'nope' (known: math",
        "no_references": "task 'summarize' uses best_of_n",
        "bad_line": f"{bad_set}:3: the task's extractor cannot read the reference answer 'four'",
        "small_budget": "the minimum is 4 samples",
        "unwritable_out": "folder",
        "unreachable": "is unreachable; nothing was spent",
        "unknown_profile": "unknown profile 'thrifty'",
    }[case]
    assert expected in err and "Traceback" not in err
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--algorithm", "bogus"], "unknown algorithm 'bogus' (known: psst"),
    (["--algorithm", "psst:x=1"], "psst: unknown parameter 'x'"),
    (["--algorithm", "psst-k:k=0"], "psst-k: k must be an integer >= 1, got 0"),
    (["--algorithm", "psst-k:k=abc"], "psst-k: k must be an integer >= 1, got 'abc'"),
    (["--algorithm", "psst-k:k=5"], "psst-k: k must be at most the number of prompts (4), got 5"),
    (["--algorithm", "psst:reuse=bogus"], "psst: reuse must be 'auto', 'pooled', 'subsets' or 'blocks', got 'bogus'"),
    (["--algorithm", "ucb:c=-1"], "ucb: c must be a number >= 0, got -1"),
    (["--timeout-s", "nan"], "--timeout-s must be a finite number of seconds > 0, got nan"),
    (["--timeout-s", "-1"], "--timeout-s must be a finite number of seconds > 0, got -1"),
    (["--timeout-s", "0"], "--timeout-s must be a finite number of seconds > 0, got 0"),
    (["--timeout-s", "inf"], "--timeout-s must be a finite number of seconds > 0, got inf"),
    (["--n-max", "0"], "--n-max must be in 1.."),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
])
def test_bad_option_exits_2_before_anything_is_spent(extra: list[str], expected: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    assert main(train_argv(config, out, cache, *extra)) == 2
    err = capsys.readouterr().err
    assert f"iapo train: error: {expected}" in err and "Traceback" not in err
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize("where", ["folder", "/proc", "fifo"])
def test_unwritable_out_exits_2_before_anything_is_spent(where: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # never a real device such as /dev/null here: a regression would replace it
    out = {"folder": tmp_path, "/proc": Path("/proc/iapo-o.yaml"), "fifo": tmp_path / "fifo"}[where]
    if where == "fifo":
        os.mkfifo(out)
    if where == "/proc" and not out.parent.is_dir():
        pytest.skip("no /proc on this system")  # os.access says yes there to root
    config = write_config(tmp_path)
    cache = tmp_path / "cache"
    assert main(train_argv(config, out, cache)) == 2
    err = capsys.readouterr().err
    reason = {"folder": "it is a folder", "fifo": "it is not a regular file"}.get(where, "")
    assert f"iapo train: error: cannot write --out {out}: {reason}" in err and "Traceback" not in err
    assert not cache.exists()


def test_failed_policy_write_exits_1_and_leaves_out_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import proxy.policy.write

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    config = write_config(tmp_path)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    out.write_text("old policy\n")
    monkeypatch.setattr(proxy.policy.write.os, "fsync", full_disk)  # the atomic write's last step
    assert main(train_argv(config, out, cache, budget=100)) == 1
    err = capsys.readouterr().err
    assert f"iapo train: stopped: cannot write --out {out}: No space left on device; nothing written" in err
    assert "Traceback" not in err
    assert out.read_text() == "old policy\n" and _cached_samples(cache) > 0
    assert not list(tmp_path.glob(".policy.yaml.*"))  # no temp file left


def test_split_field_on_some_lines_only_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (REPO / "proxy/data/tasks/math.jsonl").read_text().splitlines()[:4]
    rows = [json.loads(x) for x in lines]
    rows[2].pop("split")
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_config(tmp_path, math_dataset=partial)
    out, cache = tmp_path / "policy.yaml", tmp_path / "cache"
    assert main(train_argv(config, out, cache)) == 2
    err = capsys.readouterr().err
    assert f"{partial}:3: no 'split' field, but line 1 has one" in err and "Traceback" not in err
    assert not out.exists() and not cache.exists()


def test_sampler_timeout_none_is_the_default_and_zero_an_error(tmp_path: Path) -> None:
    from proxy.train.sampler import LiveSampler

    cfg = load_config(write_config(tmp_path))
    model = cfg.models[0]
    upstream: Any = None  # never called by the constructor
    assert LiveSampler(cfg, model, upstream, SampleCache(None)).timeout_s == model.timeout_s
    assert LiveSampler(cfg, model, upstream, SampleCache(None), timeout_s=2.5).timeout_s == 2.5
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout_s must be a finite number of seconds > 0"):
            LiveSampler(cfg, model, upstream, SampleCache(None), timeout_s=bad)


def test_malformed_json_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"input": "What is 1 + 1?", "answer": "2"}\n{"input": "oops"\n')
    config = write_config(tmp_path, math_dataset=bad)
    assert main(train_argv(config, tmp_path / "p.yaml", tmp_path / "c")) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err


def test_torn_cache_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "samples.jsonl").write_text('{"key": "a", "text": "x", "pt": 1, "ct": 1, "usd": 0.1}\n{"key": "b", "te')
    cache = SampleCache(tmp_path)
    assert set(cache.records) == {"a"} and cache.skipped == 1
    cache.put({"key": "c", "text": "y", "pt": 1, "ct": 1, "usd": 0.1})
    cache.close()
    assert set(SampleCache(tmp_path).records) == {"a", "c"}


# -- the trained policy through the proxy --------------------------------------------------------
async def _heldout_accuracy(url: str, items: list[dict[str, Any]]) -> tuple[float, set[str]]:
    sem = asyncio.Semaphore(16)
    actions: set[str] = set()
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        async def one(item: dict[str, Any]) -> bool:
            async with sem:
                r = await client.chat.completions.create(
                    model="sim-1", messages=[{"role": "user", "content": item["input"]}],
                    extra_body={"iapo": {"profile": "quality"}})
            act = r.model_extra["iapo"]["action"]
            actions.add(f"{act['prompt']};n={act['n']}")
            return extract_number(r.choices[0].message.content or "") == item["answer"]

        hits = await asyncio.gather(*(one(i) for i in items))
    return sum(hits) / len(items), actions


async def test_trained_policy_beats_n1_default_prompt_on_heldout(tmp_path: Path, start_proxy: Any) -> None:
    policy = tmp_path / "policy.yaml"
    config_path = write_config(tmp_path, policy=policy)
    assert await asyncio.to_thread(main, train_argv(config_path, policy, tmp_path / "cache",
                                                   "--n-max", "16", budget=1500)) == 0
    trained = load_policy(policy, load_config(config_path))
    quality = next(c for c in trained.contexts if c.profile == "quality")

    baseline = tmp_path / "n1.yaml"
    doc = yaml.safe_load(policy.read_text())
    doc["id"], doc["prompts"] = "n1", ["plain"]
    doc["contexts"] = [{"task": "math", "profile": "quality", "weights": dict(quality.weights),
                        "action": {"prompt": "plain", "n": 1, "aggregator": "majority"}}]
    baseline.write_text(yaml.safe_dump(doc, sort_keys=False))

    rows = [json.loads(x) for x in (REPO / "proxy/data/tasks/math.jsonl").read_text().splitlines()]
    heldout = [r for r in rows if r["split"] == "test"][:120]
    results = {}
    for name, path in (("trained", policy), ("n1", baseline)):
        (tmp_path / name).mkdir()
        cfg = load_config(write_config(tmp_path / name, policy=path))
        url = await start_proxy(config=cfg)
        results[name] = await _heldout_accuracy(url, heldout)
    assert results["trained"][1] == {f"{quality.action.prompt};n={quality.action.n}"}
    assert results["n1"][1] == {"plain;n=1"}
    assert quality.action.n > 1 and len(heldout) == 120
    assert results["trained"][0] >= results["n1"][0] + 0.15, results
