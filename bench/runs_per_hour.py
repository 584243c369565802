"""Runs per hour of a grid on this machine: K runs side by side at T torch threads each, for each
layout KxT given. It decides the defaults of `sweep.py` (how many runs at once, how many threads
each).

Each layout starts K real `run.py` processes (seeds 0..K-1) in temporary folders and lets each
train `--epochs` epochs after its first (the first fills the buffers). A run's steady seconds per
epoch is the mean wall-clock increment of those epochs (training, collection and the background
evaluation it waits for); the projected wall time of a full run is its first epoch plus
(n_epochs - 1) steady epochs, with n_epochs the env's configured budget. Runs per hour is
K / that time. Layouts alternate over `--repeats` so that drift of the machine hits each alike.
Run it on an otherwise idle machine.

    python bench/runs_per_hour.py [--env ID] [--method M] [--layouts 1x2 2x1] [--epochs 30]
                                  [--repeats 1]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile

from common import ROOT, write_table

from experiment_utils import resolve_config


def parse_layout(text: str) -> tuple[int, int]:
    """'2x1' -> (2 runs at once, 1 thread each)."""
    try:
        jobs, threads = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"layout {text!r} is not JOBSxTHREADS, e.g. 2x1") from None
    if jobs < 1 or threads < 1:
        raise SystemExit(f"layout {text!r} needs positive numbers")
    return jobs, threads


def epoch_times(progress: str) -> list[float]:
    """The Time column (seconds since the run started, at each epoch's end) of a progress.csv."""
    with open(progress) as f:
        return [float(r["Time"]) for r in csv.DictReader(f)]


def run_layout(env: str, method: str, jobs: int, threads: int, epochs: int,
               flags: list[str]) -> list[tuple[float, float]]:
    """(first-epoch seconds, steady seconds per epoch) of each of `jobs` runs started together."""
    with tempfile.TemporaryDirectory() as tmp:
        procs, dirs = [], []
        for seed in range(jobs):
            log_dir = os.path.join(tmp, f"s{seed}")
            cmd = [sys.executable, os.path.join(ROOT, "run.py"), method, f"--env={env}",
                   "--seed", str(seed), "--torch_threads", str(threads),
                   "--n_epochs", str(epochs + 1), "--log_dir", log_dir, *flags]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, cwd=ROOT))
            dirs.append(log_dir)
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"a run of layout {jobs}x{threads} failed (exit {p.returncode})")
        out = []
        for log_dir in dirs:
            times = epoch_times(os.path.join(log_dir, "progress.csv"))
            out.append((times[0], (times[-1] - times[0]) / (len(times) - 1)))
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="JacoReachMT5-v1")
    p.add_argument("--method", default="qmp_dnc")
    p.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="JOBSxTHREADS each")
    p.add_argument("--epochs", type=int, default=30, help="timed epochs after the first")
    p.add_argument("--repeats", type=int, default=1, help="rounds over all layouts")
    p.add_argument("--out", default="runs_per_hour")
    p.add_argument("flags", nargs=argparse.REMAINDER, help="-- flags for every run.py")
    a = p.parse_args()
    flags = a.flags[1:] if a.flags[:1] == ["--"] else a.flags
    layouts = [parse_layout(x) for x in a.layouts]
    budget = resolve_config([a.method, f"--env={a.env}", *flags]).n_epochs

    results: dict[tuple[int, int], list[tuple[float, float]]] = {x: [] for x in layouts}
    for _ in range(a.repeats):
        for jobs, threads in layouts:
            results[(jobs, threads)] += run_layout(a.env, a.method, jobs, threads, a.epochs, flags)
            first, steady = results[(jobs, threads)][-1]
            print(f"{jobs}x{threads}: first epoch {first:.1f} s, {steady:.2f} s/epoch", flush=True)

    rows, base = [], None
    for jobs, threads in layouts:
        first = statistics.mean(r[0] for r in results[(jobs, threads)])
        steady = statistics.mean(r[1] for r in results[(jobs, threads)])
        hours = (first + (budget - 1) * steady) / 3600
        per_hour = jobs / hours
        base = base or per_hour
        rows.append([f"{jobs} x {threads}", jobs, threads, steady, hours, per_hour,
                     per_hour / base])
    print(f"{a.method} on {a.env}, {budget} epochs per run, {a.epochs} timed epochs, "
          f"{a.repeats} repeat(s):")
    write_table(a.out, ["layout", "runs at once", "threads each", "s/epoch (each run)",
                        "hours per run", "runs per hour", "vs first layout"], rows)


if __name__ == "__main__":
    main()
