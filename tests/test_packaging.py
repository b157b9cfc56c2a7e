"""The wheel (and the Docker image, which installs it) carries every data file the package reads."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _package_data_files() -> set[Path]:
    """The files ``[tool.setuptools.package-data]`` selects, globbed as setuptools does."""
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    covered: set[Path] = set()
    for package, patterns in table["package-data"].items():
        root = REPO / package.replace(".", "/")
        for pattern in patterns:
            covered |= {Path(p) for p in glob.glob(str(root / pattern), recursive=True)
                        if Path(p).is_file()}
    return covered


def test_package_data_covers_every_non_python_file() -> None:
    shipped = {p for p in (REPO / "proxy").rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert shipped, "no data files found under proxy/"
    missing = sorted(str(p.relative_to(REPO)) for p in shipped - _package_data_files())
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
