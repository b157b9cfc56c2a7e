"""``iapo sim`` (run as ``python -m proxy.sim.cli``): argument parsing and a real start-up."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

import aiohttp

from proxy.sim import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_arguments_become_settings() -> None:
    s = cli.settings_from_args(parse("--seed", "7", "--ttft-ms", "0", "--tpot-ms", "2.5",
                                     "--error-rate", "0.1", "--drop-rate", "0.05"))
    assert (s.seed, s.ttft_s, s.tpot_s, s.error_rate, s.drop_rate) == (7, 0.0, 0.0025, 0.1, 0.05)
    assert cli.run(parse("--error-rate", "1.5")) == 2  # rejected before anything starts


async def test_iapo_sim_serves_until_stopped() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.sim.cli", "--port", "0", "--ttft-ms", "0", "--tpot-ms", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
            assert line, "iapo sim exited before logging its URL"
            m = re.search(r"base URL (http://\S+/v1)", line)
            url = m.group(1) if m else None
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/chat/completions",
                                 json={"model": "m", "messages": [{"role": "user", "content": "hello"}]}) as r:
                assert r.status == 200 and (await r.json())["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        await proc.wait()
        if proc.stderr is not None:
            await proc.stderr.read()
