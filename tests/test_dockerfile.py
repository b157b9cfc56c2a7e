"""The Docker image's CMD and HEALTHCHECK agree on the port: both read ``$IAPO_PORT``.

No Docker daemon is needed: the exec-form arrays are taken from the Dockerfile and run here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` for each instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def _exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
    return argv


def _healthcheck() -> list[str]:
    [args] = [a for op, a in _instructions() if op == "HEALTHCHECK"]
    return _exec_form(args[args.index("CMD ") + 4:])


async def _exit_code(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(*argv, env={**os.environ, **env},
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out


def test_iapo_port_has_a_default() -> None:
    env = " ".join(a for op, a in _instructions() if op == "ENV")
    assert re.search(r"\bIAPO_PORT=8000\b", env)


async def test_healthcheck_asks_the_port_in_iapo_port(proxy_url: str) -> None:
    argv = [sys.executable if a == "python" else a for a in _healthcheck()]
    port = proxy_url.rsplit(":", 1)[1]
    assert (await _exit_code(argv, {"IAPO_PORT": port}))[0] == 0
    assert (await _exit_code(argv, {"IAPO_PORT": "9"}))[0] != 0  # nothing listens there


async def test_cmd_serves_on_iapo_port(tmp_path: Path) -> None:
    [args] = [a for op, a in _instructions() if op == "CMD"]
    stub = tmp_path / "iapo"
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    code, out = await _exit_code(_exec_form(args), {"IAPO_PORT": "9123",
                                                   "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert code == 0 and out.decode().split() == ["serve", "--host", "0.0.0.0", "--port", "9123"]
