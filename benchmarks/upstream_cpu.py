"""CPU cost per upstream call: ``litellm.acompletion`` vs :class:`DirectUpstream` (one run).

    python benchmarks/upstream_cpu.py [--calls 500]

Starts the simulator in its own process at zero latency (so its CPU is not counted), then makes
``--calls`` sequential non-streaming calls through each transport after a warm-up, timing each
with ``time.process_time()`` (this process, all threads). Prints the median and p90 CPU ms per
call and the ratio. The direct path exists because of this ratio: fan-out multiplies it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a clone without installing

REQUEST = {"messages": [{"role": "user", "content": "What is 17 + 25?"}], "max_tokens": 16}


@contextmanager
def sim_process(*extra: str) -> Iterator[str]:
    """The simulator (zero latency) in a child process; yields its base URL (``.../v1``)."""
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "sim", "--port", "0", "--ttft-ms", "0",
                             "--tpot-ms", "0", *extra], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL)
    try:
        url = None
        while url is None:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("the simulator did not start")
            found = re.search(r"base URL (\S+)", line)
            url = found.group(1) if found else None
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


async def _measure(call, calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await call()
    cpu = []
    for _ in range(calls):
        t0 = time.process_time()
        await call()
        cpu.append(time.process_time() - t0)
    return cpu


async def run(url: str, calls: int, warmup: int) -> dict[str, list[float]]:
    from proxy.config import ModelConfig
    from proxy.upstream.direct import DirectUpstream
    from proxy.upstream.litellm_upstream import LiteLLMUpstream

    model = ModelConfig(name="sim-1", model="openai/sim-1", api_base=url)
    direct, lite = DirectUpstream(), LiteLLMUpstream()
    await lite.load()
    try:
        return {
            "direct": await _measure(lambda: direct.complete(model, REQUEST), calls, warmup),
            "litellm.acompletion": await _measure(lambda: lite.complete(model, REQUEST), calls, warmup),
        }
    finally:
        await direct.close()
        await lite.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with sim_process() as url:
        results = asyncio.run(run(url, args.calls, args.warmup))
    print(f"CPU per call, {args.calls} sequential calls each, simulator at zero latency (own process)")
    print(f"{'transport':<22}{'median ms':>10}{'p90 ms':>10}")
    med = {}
    for name, cpu in results.items():
        med[name] = statistics.median(cpu) * 1000
        p90 = statistics.quantiles(cpu, n=10)[-1] * 1000
        print(f"{name:<22}{med[name]:>10.3f}{p90:>10.3f}")
    print(f"litellm / direct: {med['litellm.acompletion'] / med['direct']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
