from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from proxy.config import Config, FanoutConfig
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.pipeline.fanout import FanOut, choose_strategy


def _fan(up, **kw) -> FanOut:
    return FanOut(up, FanoutConfig(**{"sample_timeout_s": 1.0, **kw}))


async def test_parallel_draws_n_single_calls(fake, config: Config) -> None:
    up = fake(lambda b: ["x"])
    async with _fan(up).run(config.models[0], {"messages": [], "n": 3}, 5) as run:
        got = [s async for s in run]
    assert len(got) == 5 and [s.index for s in got] == list(range(5))
    assert len(up.calls) == 5 and all("n" not in c for c in up.calls)
    assert (run.counts.completed, run.counts.failed, run.counts.cancelled) == (5, 0, 0)
    assert run.counts.usage.total_tokens == 5 * 15 and run.counts.cost_usd == pytest.approx(0.005)


async def test_n_strategy_verifies_choices_and_tops_up(fake, config: Config) -> None:
    up = fake(lambda b: ["a"] * min(b.get("n", 1), 3))  # provider caps n at 3
    async with _fan(up).run(config.models[0], {"messages": []}, 8, strategy="n") as run:
        got = [s async for s in run]
    # 8 -> 3 returned, top-up 5 -> 3, top-up 2 -> 2 : all 8 delivered in 3 calls
    assert len(got) == 8 and [c.get("n") for c in up.calls] == [8, 5, 2]
    up2 = fake(lambda b: ["a"])  # ignores n entirely
    async with _fan(up2).run(config.models[0], {"messages": []}, 4, strategy="n") as run2:
        got2 = [s async for s in run2]
    assert len(got2) == 3 and run2.counts.failed == 1
    assert "returned 1 of 2 choices" in run2.counts.summary()


async def test_partial_failure_answers_from_successes(fake, config: Config) -> None:
    seen = iter(range(100))
    up = fake(lambda b: UpstreamError("upstream 500") if next(seen) % 2 else ["ok"])
    async with _fan(up, min_success=2).run(config.models[0], {"messages": []}, 6) as run:
        got = [s async for s in run]
        run.check()
    assert len(got) == 3 and run.counts.failed == 3


async def test_all_failing_is_502_naming_what_failed(fake, config: Config) -> None:
    up = fake(lambda b: UpstreamError("simulated upstream failure"))
    async with _fan(up).run(config.models[0], {"messages": []}, 4) as run:
        assert [s async for s in run] == []
        with pytest.raises(UpstreamError) as err:
            run.check()
    assert not isinstance(err.value, UpstreamTimeout) and err.value.status == 502
    assert "0 of 4 samples succeeded" in err.value.message
    assert "4 x simulated upstream failure" in err.value.message


async def test_a_failure_message_the_user_must_act_on_is_not_cut(fake, config: Config) -> None:
    message = ("upstream rejected the proxy's credentials for model 'acme-prod-claude-3-haiku' "
               "(HTTP 401); check env var ACME_ANTHROPIC_API_KEY, which is not set")
    up = fake(lambda b: UpstreamError(message, status=502))
    async with _fan(up).run(config.models[0], {"messages": []}, 2) as run:
        assert [s async for s in run] == []
        with pytest.raises(UpstreamError) as err:
            run.check()
    assert f"2 x {message}" in err.value.message  # the env var named whole (it was cut at 120)


async def test_all_timeouts_is_504(fake, config: Config) -> None:
    up = fake(lambda b: ["late"], delay=lambda b: 5.0)
    async with _fan(up, sample_timeout_s=0.05).run(config.models[0], {"messages": []}, 3) as run:
        assert [s async for s in run] == []
        with pytest.raises(UpstreamTimeout) as err:
            run.check()
    assert err.value.status == 504 and "0 of 3 samples succeeded: 3 timeouts" in err.value.message


async def test_concurrency_caps(fake, config: Config) -> None:
    active, peak = 0, 0

    class Counting(fake):  # type: ignore[misc, valid-type]
        async def complete(self, model, request, *, timeout_s=None):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            try:
                await asyncio.sleep(0.01)
                return await super().complete(model, request, timeout_s=timeout_s)
            finally:
                active -= 1

    fan = FanOut(Counting(lambda b: ["x"]), FanoutConfig(max_concurrency=5,
                                                         per_request_concurrency=3))
    async with fan.run(config.models[0], {"messages": []}, 10) as run:
        assert len([s async for s in run]) == 10
    assert peak == 3
    limit_a, limit_b = fan.request_limit(), fan.request_limit()

    async def one(limit):
        async with fan.run(config.models[0], {"messages": []}, 6, limit=limit) as r:
            return [s async for s in r]

    peak = 0
    await asyncio.gather(one(limit_a), one(limit_b))
    assert peak == 5  # two requests at 3 each, held to the global 5


async def test_leaving_the_block_cancels_pending_calls(fake, config: Config) -> None:
    up = fake(lambda b: ["x"], delay=lambda b: 0.0 if len(up.calls) == 1 else 10.0)
    async with _fan(up, sample_timeout_s=30).run(config.models[0], {"messages": []}, 4) as run:
        first = await run.__anext__()
    assert first.index == 0 and run.counts.cancelled == 3 and up.cancelled == 3


async def test_cancelling_the_consumer_cancels_the_samples(fake, config: Config) -> None:
    up = fake(lambda b: ["x"], delay=lambda b: 10.0)
    fan = _fan(up, sample_timeout_s=30)

    async def consume() -> None:
        async with fan.run(config.models[0], {"messages": []}, 5) as run:
            async for _ in run:
                pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert up.cancelled == 5


def test_auto_strategy(config: Config) -> None:
    m = config.models[0]
    assert choose_strategy("auto", m, "majority", 9, True) == "parallel"
    assert choose_strategy("auto", m, "majority", 9, False) == "n"
    assert choose_strategy("auto", m, "best_of_n", 9, True) == "n"
    no_n = replace(m, supports_n=False)
    assert choose_strategy("auto", no_n, "best_of_n", 9, True) == "parallel"
    assert choose_strategy("n", no_n, "majority", 9, True) == "parallel"


async def test_samples_received_in_one_call_are_never_counted_as_saved(fake, config: Config,
                                                                       classifier) -> None:
    from proxy.actions import Selection
    from proxy.config import Action
    from proxy.pipeline.service import PipelineService
    from proxy.protocol import parse_chat_request
    from proxy.serving import RequestContext

    class NAction:
        def select(self, task, weights, max_n=None):
            return Selection(Action("cot", 5, "majority"), "t", "1", "fixed")

    up = fake(lambda b: ["The answer is 3."] * b.get("n", 1))
    svc = PipelineService(config, up, NAction(), classifier=classifier, strategy="n")
    req = parse_chat_request({"model": "sim-1", "messages": [{"role": "user", "content": "1+2?"}]},
                             max_n=4)
    res = await svc.complete(req, RequestContext(request_id="x"))
    samples = res.body["iapo"]["samples"]
    assert len(up.calls) == 1 and up.calls[0]["n"] == 5
    assert samples["completed"] == 5 and samples["saved_by_early_stop"] == 0
    assert res.body["iapo"]["votes"] == {"3": 5}


async def test_waves_send_in_index_order_with_per_sample_seeds(fake, config: Config) -> None:
    up = fake(lambda b: [f"s{b['seed']}"])
    asks: list[tuple[int, int]] = []

    def refill(run) -> int:  # two more whenever nothing is in flight
        asks.append((run.in_flight, run.unsent))
        return 0 if run.in_flight else 2

    async with _fan(up).run(config.models[0], {"messages": [], "seed": 100}, 6, first=1,
                            refill=refill) as run:
        assert (run.in_flight, run.unsent, run.next_index) == (1, 5, 1)
        got = [s async for s in run]
    assert sorted(s.index for s in got) == list(range(6))
    assert all(s.text == f"s{100 + s.index}" for s in got)  # sample i is seed + i, whenever sent
    assert [c["seed"] for c in up.calls] == [100, 101, 102, 103, 104, 105]
    assert [u for f, u in asks if f == 0] == [5, 3, 1]  # asked before each wait with some unsent
    counts = run.counts
    assert (counts.completed, counts.cancelled, counts.unsent, counts.calls) == (6, 0, 0, 6)


async def test_waves_stop_leaves_unsent_samples_counted(fake, config: Config) -> None:
    up = fake(lambda b: ["x"], delay=lambda b: 0.0 if b.get("seed", 0) < 2 else 10.0)
    async with _fan(up, sample_timeout_s=30).run(config.models[0], {"messages": [], "seed": 0},
                                                 9, first=3) as run:
        first = [await run.__anext__(), await run.__anext__()]
        assert run.pending == 7 and run.pending_min_index == 2
    c = run.counts
    assert [s.index for s in first] == [0, 1] and len(up.calls) == 3 and up.cancelled == 1
    assert (c.completed, c.failed, c.cancelled, c.unsent) == (2, 0, 1, 6)
    assert c.completed + c.failed + c.cancelled + c.unsent == c.requested


async def test_waves_with_the_n_strategy_send_one_call_per_wave(fake, config: Config) -> None:
    up = fake(lambda b: ["a"] * b.get("n", 1))
    sizes = iter([3, 2])
    async with _fan(up).run(config.models[0], {"messages": [], "seed": 7}, 9, strategy="n",
                            first=4, refill=lambda run: next(sizes, 0)) as run:
        got = [s async for s in run]
    assert [(c.get("n", 1), c["seed"]) for c in up.calls] == [(4, 7), (3, 11), (2, 14)]
    assert sorted(s.index for s in got) == list(range(9))


async def test_a_short_n_call_is_topped_up_at_its_missing_indices(fake, config: Config) -> None:
    up = fake(lambda b: ["a"] * min(b.get("n", 1), 3))
    async with _fan(up).run(config.models[0], {"messages": [], "seed": 0}, 5,
                            strategy="n") as run:
        got = [s async for s in run]
    assert sorted(s.index for s in got) == [0, 1, 2, 3, 4]
    assert [(c["n"], c["seed"]) for c in up.calls] == [(5, 0), (2, 3)]


async def test_cancelling_a_wave_run_cancels_its_calls_and_sends_no_more(fake,
                                                                        config: Config) -> None:
    up = fake(lambda b: ["x"], delay=lambda b: 10.0)
    fan = _fan(up, sample_timeout_s=30)
    runs = []

    async def consume() -> None:
        async with fan.run(config.models[0], {"messages": []}, 8, first=3,
                           refill=lambda run: 1) as run:
            runs.append(run)
            async for _ in run:
                pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    c = runs[0].counts
    assert up.cancelled == len(up.calls) == 4  # the first wave and one refill, all cancelled
    assert (c.completed, c.cancelled, c.unsent) == (0, 4, 4)


def test_early_stop_config_modes_and_errors() -> None:
    import yaml

    from proxy.config import ConfigError, parse_config

    base = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())

    def fanout(text: str) -> FanoutConfig:
        return parse_config({**base, "fanout": yaml.safe_load(text)}).fanout

    assert fanout("{early_stop: off}").early_stop == "off"          # YAML reads off as false
    assert fanout("{early_stop: true}").early_stop == "at_once"
    got = fanout("{early_stop: waves, first_wave: 0.75, stop_risk: 0}")
    assert (got.early_stop, got.first_wave, got.stop_risk) == ("waves", 0.75, 0.0)
    with pytest.raises(ConfigError) as err:
        fanout("{early_stop: sometimes, first_wave: 2, stop_risk: -1}")
    text = str(err.value)
    assert all(f"fanout.{key}" in text for key in ("early_stop", "first_wave", "stop_risk"))
    assert FanoutConfig(early_stop=False).early_stop == "off"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fanout.early_stop"):
        FanoutConfig(early_stop="sometimes")


async def test_waiting_for_a_slot_counts_against_the_sample_timeout(fake, config: Config) -> None:
    """One slot, two samples that never answer: the second times out while still waiting
    for the slot, at the same deadline as the first, not one timeout later."""
    up = fake(lambda b: ["late"], delay=lambda b: 10.0)
    fan = FanOut(up, FanoutConfig(sample_timeout_s=0.1, per_request_concurrency=1))
    start = asyncio.get_running_loop().time()
    async with fan.run(config.models[0], {"messages": []}, 2) as run:
        assert [s async for s in run] == []
    assert asyncio.get_running_loop().time() - start < 0.18
    assert (run.counts.timeouts, len(up.calls)) == (2, 1)
