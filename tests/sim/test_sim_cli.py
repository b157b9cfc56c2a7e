"""``iapo sim`` (run as ``python -m proxy.sim.cli``): argument parsing and a real start-up."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from proxy.cli import main
from proxy.sim import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_arguments_become_settings() -> None:
    s = cli.settings_from_args(parse("--seed", "7", "--ttft-ms", "0", "--tpot-ms", "2.5",
                                     "--error-rate", "0.1", "--drop-rate", "0.05"))
    assert (s.seed, s.ttft_s, s.tpot_s, s.error_rate, s.drop_rate) == (7, 0.0, 0.0025, 0.1, 0.05)
    assert cli.run(parse("--error-rate", "0.6", "--drop-rate", "0.6")) == 2  # before it starts


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


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``iapo sim ARGV`` in process: its exit code (argparse's too) and its stderr."""
    try:
        code = main(["sim", *argv])
    except SystemExit as exc:  # argparse rejects an argument
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_out_of_range_is_an_argument_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(capsys, "--port", port)
    assert code == 2 and "argument --port: " in err and "is not a port number" in err


@pytest.mark.parametrize(("argv", "message"), [
    (("--ttft-ms", "-5"), "argument --ttft-ms: must be >= 0, got -5"),
    (("--error-rate", "2"), "argument --error-rate: must be in [0, 1], got 2"),
    (("--jitter", "nan"), "argument --jitter: must be in [0, 1], got nan"),
    (("--slow-s", "abc"), "argument --slow-s: 'abc' is not a number"),
])
def test_a_setting_out_of_range_names_its_flag(argv: tuple[str, ...], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(capsys, *argv)
    assert code == 2 and message in err, err  # the flag typed, not an internal field


def test_fault_rates_summing_over_one_name_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(capsys, "--error-rate", "0.6", "--drop-rate", "0.6") == (
        2, "error: --error-rate, --rate-limit-rate, --slow-rate, --drop-rate and "
           "--malformed-rate must sum to at most 1\n")


def test_a_bad_task_set_is_a_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "alltest.jsonl"
    bad.write_text('{"id": "", "task": "t", "input": "q"}\n', encoding="utf-8")
    assert _main(capsys, "--tasks-dir", str(tmp_path)) == (
        2, f"error: {bad}:1: 'id' must be a non-empty string\n")
    bad.write_bytes(b"\xff\n")
    assert _main(capsys, "--tasks-dir", str(tmp_path)) == (2, f"error: {bad}: not UTF-8 text\n")


def test_a_tasks_dir_that_is_not_a_folder_is_rejected(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    missing, file = tmp_path / "missing", tmp_path / "file.jsonl"
    file.write_text("", encoding="utf-8")
    assert _main(capsys, "--tasks-dir", str(missing)) == (2, f"error: --tasks-dir: {missing} does not exist\n")
    assert _main(capsys, "--tasks-dir", str(file)) == (2, f"error: --tasks-dir: {file} is not a folder\n")
