"""``iapo classifier``: trains from the task sets, writes a file the proxy loads, clear errors."""

from __future__ import annotations

from pathlib import Path

from proxy.cli import main
from proxy.config import Config
from proxy.pipeline.classify import TaskClassifier

REPO = Path(__file__).resolve().parents[2]


def test_writes_a_classifier_the_proxy_loads(tmp_path: Path, config: Config, capsys) -> None:
    out = tmp_path / "clf.npz"
    assert main(["classifier", "--config", str(REPO / "config.yaml"), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    clf = TaskClassifier.load(config, out)
    assert set(clf.labels) == {t.name for t in config.tasks}
    assert clf.classify([{"role": "user", "content": "What is 17 + 25?"}]).task == "math"
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_bad_config_and_bad_out_are_clear_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("server: {port: eighty}\n")
    assert main(["classifier", "--config", str(bad)]) == 2
    assert "server.port" in capsys.readouterr().err
    assert main(["classifier", "--config", str(REPO / "config.yaml"), "--out", str(tmp_path / "x.txt")]) == 2
    assert "--out" in capsys.readouterr().err
