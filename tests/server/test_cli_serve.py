"""``iapo serve`` as a user runs it (a subprocess): start-up errors (a bad classifier file or task
set is named, exit 2; only a real bind failure says "cannot listen", exit 1), its log lines, and
a graceful stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, server: dict[str, Any] | None = None,
            simulator: dict[str, Any] | None = None, **classifier: Any) -> Path:
    """The repository's config with absolute paths and ``server``, ``simulator`` and
    ``classifier`` keys set."""
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data["server"].update(server or {})
    data["simulator"].update(simulator or {})
    for task in data["tasks"]:
        if "dataset" in task:
            task["dataset"] = str(REPO / task["dataset"])
    data["policies"]["paths"] = [str(REPO / p) for p in data["policies"]["paths"]]
    data["classifier"].update(classifier)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _serve(config: Path, port: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config),
                           "--port", str(port)], capture_output=True, text=True, timeout=120,
                          cwd=config.parent)


def _errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def test_a_folder_as_classifier_path_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    config = _config(tmp_path, path=str(folder))
    proc = _serve(config)
    assert proc.returncode == 2
    assert _errors(proc) == [f"error: {config}: classifier.path: {folder}: is a directory, "
                             "not an .npz classifier file"]


def test_a_file_that_is_not_an_npz_is_named(tmp_path: Path) -> None:
    config = _config(tmp_path, path="config.yaml")
    proc = _serve(config)
    assert proc.returncode == 2
    assert _errors(proc) == [f"error: {config}: classifier.path: {config}: not an .npz classifier file"]


def test_a_bad_task_set_line_is_named_when_the_classifier_must_train(tmp_path: Path) -> None:
    bad = tmp_path / "math.jsonl"
    bad.write_text('{"input": "What is 2 + 2?"}\n{"input": "x", broken\n', encoding="utf-8")
    config = _config(tmp_path, path=str(tmp_path / "missing.npz"))
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["tasks"][0]["dataset"] = str(bad)
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    proc = _serve(config)
    assert proc.returncode == 2
    [line] = _errors(proc)
    assert line.startswith(f"error: {config}: tasks[0].dataset: {bad}:2: not valid JSON (")


def test_only_a_bind_failure_says_cannot_listen(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve(_config(tmp_path), port)
    assert proc.returncode == 1
    [line] = _errors(proc)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_a_malformed_request_is_one_warning_line_not_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config",
                             str(_config(tmp_path)), "--port", "0"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "proxy.server: listening on" in line:  # ... listening on http://HOST:PORT
                port = int(line.rstrip().rsplit(":", 1)[1])
                break
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: -1\r\n\r\n")
            assert conn.recv(1 << 16).startswith(b"HTTP/1.")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert [line for line in err.splitlines() if "malformed request" in line
            and " WARNING aiohttp.server: " in line], err


def test_access_log_is_one_line_per_request_with_its_id_and_action(tmp_path: Path) -> None:
    import json
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config",
                             str(_config(tmp_path)), "--port", "0", "--access-log"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "proxy.server: listening on" in line:
                url = line.rstrip().rsplit(" ", 1)[1]
                break
        body = json.dumps({"model": "sim-1", "messages": [{"role": "user", "content": "Hi there"}]})
        req = urllib.request.Request(f"{url}/v1/chat/completions", data=body.encode(),
                                     headers={"content-type": "application/json",
                                              "x-request-id": "trace-42"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            action = resp.headers["x-iapo-action"]
        urllib.request.urlopen(f"{url}/health", timeout=10).read()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if " proxy.access: " in line]
    assert len(lines) == 2, err
    assert '"POST /v1/chat/completions HTTP/1.1" 200 ' in lines[0]
    assert lines[0].endswith(f"id=trace-42 action={action}")
    assert '"GET /health HTTP/1.1" 200 ' in lines[1]


@pytest.mark.parametrize("grace_s", [60, 0.2])
def test_sigterm_gives_requests_in_flight_the_shutdown_timeout(tmp_path: Path,
                                                                grace_s: float) -> None:
    config = _config(tmp_path, server={"shutdown_timeout_s": grace_s},
                     simulator={"ttft_s": 1.5})  # every answer is 1.5 s away
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config),
                             "--port", "0"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    got: dict[str, Any] = {}

    def ask(url: str) -> None:
        body = json.dumps({"model": "sim-1", "messages": [{"role": "user", "content": "Hello"}]})
        req = urllib.request.Request(f"{url}/v1/chat/completions", data=body.encode(),
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                got["status"], got["body"] = resp.status, json.loads(resp.read())
        except OSError as exc:  # the connection closed under it
            got["error"] = exc
        got["at"] = time.monotonic()

    try:
        assert proc.stderr is not None
        url = next(line.rstrip().rsplit(" ", 1)[1] for line in proc.stderr
                   if "proxy.server: listening on" in line)
        client = threading.Thread(target=ask, args=(url,))
        client.start()
        time.sleep(0.5)  # the request is in flight
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert "Traceback" not in err, err
    if grace_s == 60:  # waited for: the answer arrives, after the signal
        assert got.get("status") == 200 and got["body"]["choices"][0]["message"]["content"]
        assert got["at"] - stopped > 0.5
    else:  # cut when the grace ran out, long before the answer would have come
        assert "error" in got and "status" not in got
        assert got["at"] - stopped < 0.9


def test_access_log_shows_at_any_log_level(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port: at --log-level warning nothing logs the address
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config",
                             str(_config(tmp_path)), "--port", str(port), "--access-log",
                             "--log-level", "warning"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "did not start"
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [line for line in err.splitlines() if " proxy.access: " in line]
    assert len(lines) == 1 and '"GET /health HTTP/1.1" 200 ' in lines[0], err
    assert " INFO proxy.server: " not in err  # the rest stays at the level asked for
