"""Shared helpers of the benchmark scripts: timing, the machine's matmul rate, result tables."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402

from learning.runs.runtime import keep_freed_memory  # noqa: E402

keep_freed_memory()

RESULTS = os.path.join(ROOT, "bench", "results")


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn` over `repeats` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matmul rate of this machine at the current torch thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = median_seconds(lambda: torch.mm(a, b), repeats)
    return 2 * size**3 / seconds / 1e9


def write_table(name: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Print a markdown table and save it as bench/results/NAME.md and NAME.csv."""
    def cell(x: object) -> str:
        if isinstance(x, float):
            return f"{x:,.3g}" if abs(x) < 100 else f"{x:,.0f}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    table = "\n".join(lines)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(RESULTS, name + ".csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(str(x) for x in row) + "\n")
    print(table, flush=True)
    return table
