"""benchmarks/request_cpu.py keeps working: it answers 200 through the whole app, and with each
part stubbed (the stubs reach into the pipeline, so a refactor that breaks them shows here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import request_cpu  # noqa: E402  (a script, not a package)


@pytest.mark.parametrize("parts", [[], *([p] for p in request_cpu.PARTS)])
async def test_the_request_path_bench_runs_with_each_part_stubbed(parts: list[str]) -> None:
    reps = await request_cpu.measure(20, parts, under_callgrind=False)
    assert len(reps) == 7 and all(r > 0 for r in reps)
