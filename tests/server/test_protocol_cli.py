"""Request validation and the ``iapo serve`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from proxy.errors import InvalidRequest
from proxy.protocol import completion_body, parse_chat_request, to_upstream

REPO = Path(__file__).resolve().parents[2]
MSG = [{"role": "user", "content": "hi"}]


def test_parse_keeps_hints_apart_and_extras_for_upstream() -> None:
    req = parse_chat_request({"model": "sim-1", "messages": MSG, "iapo": {"task": "math"},
                              "tools": [{"type": "function"}], "max_completion_tokens": 5,
                              "stop": "\n", "n": 2, "stream": True,
                              "stream_options": {"include_usage": True}}, max_n=4)
    assert req.hints == {"task": "math"} and req.extra == {"tools": [{"type": "function"}]}
    assert req.include_usage and req.n == 2
    body = to_upstream(req, "provider-name")
    assert "iapo" not in body
    assert body == {"tools": [{"type": "function"}], "model": "provider-name", "messages": MSG,
                    "max_completion_tokens": 5, "stop": "\n", "n": 2, "stream": True,
                    "stream_options": {"include_usage": True}}


def test_parse_accepts_openai_message_shapes() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]
    req = parse_chat_request({"model": "m", "messages": messages, "temperature": None}, max_n=1)
    assert req.messages == messages and req.temperature is None and req.n == 1
    replayed = [{"role": "user", "content": "x"},
                {"role": "assistant", "content": None, "refusal": "I can't help with that."},
                {"role": "assistant", "content": None, "audio": {"id": "audio_1"}}]
    assert parse_chat_request({"model": "m", "messages": replayed}, max_n=1).messages == replayed


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m", "messages": [{"role": "assistant", "content": None}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0]"),
    ({"model": "m", "messages": MSG, "stream_options": {"include_usage": "y"}}, "stream_options.include_usage"),
    ({"model": "m", "messages": MSG, "user": 7}, "user"),
    ({"model": "m", "messages": MSG, "n": 5}, "n"),
])
def test_parse_rejects_with_param(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(body, max_n=4)
    assert info.value.param == param and info.value.status == 400


def test_server_max_tokens_bounds_and_defaults_the_tokens_per_sample() -> None:
    def parsed(**fields: int) -> tuple[int | None, int | None]:
        req = parse_chat_request({"model": "m", "messages": MSG, **fields}, max_n=4, max_tokens=64)
        return req.max_tokens, req.max_completion_tokens

    assert parsed() == (64, None)  # none asked for: the bound is sent
    assert parsed(max_tokens=10) == (10, None)
    assert parsed(max_completion_tokens=64) == (None, 64)
    for key in ("max_tokens", "max_completion_tokens"):
        with pytest.raises(InvalidRequest) as info:
            parsed(**{key: 65})
        assert info.value.param == key and "between 1 and 64" in info.value.message
    unbounded = parse_chat_request({"model": "m", "messages": MSG}, max_n=4)
    assert unbounded.max_tokens is None and unbounded.max_completion_tokens is None


def test_completion_body_shape() -> None:
    body = completion_body("sim-1", ["a", "b"], {"prompt_tokens": 1, "completion_tokens": 2,
                                                "total_tokens": 3})
    assert body["id"].startswith("chatcmpl-") and len(body["id"]) == len("chatcmpl-") + 32
    assert [c["message"]["content"] for c in body["choices"]] == ["a", "b"]


def _iapo(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "proxy", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_serve_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = (REPO / "config.yaml").read_text().replace("    api_base: embedded", "    api_base: nowhere", 1)
    path = tmp_path / "config.yaml"
    path.write_text(bad)
    proc = _iapo("serve", "--config", str(path), "--port", "0")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # it started after all: stop it, the assertions below fail
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2
    assert f"error: {path}: models[0].api_base: not a URL" in err
    assert "Traceback" not in err


def test_serve_help_explains_options() -> None:
    proc = _iapo("serve", "--help")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "--config" in out and "--port" in out and "--host" in out


def test_serve_starts_answers_and_stops_on_sigterm() -> None:
    proc = _iapo("serve", "--port", "0", env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line:
                break
            if "proxy.server: listening on " in line:
                url = line.strip().rsplit("listening on ", 1)[1]
        assert url is not None, "the server did not log its address"
        with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
