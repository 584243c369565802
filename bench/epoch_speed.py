"""Whole epochs at the paper's hyper-parameters (the per-environment defaults of the authors'
run.py): seconds per epoch of every method, and the projected wall time of the paper's full
budget on this machine.

Each method runs through the real trainer (`run_experiment`) for a few epochs; the first epoch
(which fills the buffers to min_buffer_size) is excluded and the steady-state seconds per epoch is
the mean of the remaining epochs' wall-clock increments (training plus any wait for the background
evaluation). `--rounds R` runs R collect+train rounds per epoch instead of the paper's
steps_per_epoch and scales the training time back up (for MT10, whose paper epoch is ~10 min).

The first epochs of a run are not always its typical ones (Jaco's are its dearest): see
`epoch_profile.py` for where an epoch's time goes, early or late in a run.

    python bench/epoch_speed.py [--envs ID ...] [--methods M ...] [--epochs K] [--rounds R]
                                [--threads T]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from collections.abc import Sequence

from common import write_table

from experiment_utils import resolve_config
from garage_experiments import run_experiment

METHODS = ["dnc_sac", "qmp_dnc", "mtsac", "qmp_sac", "uds_dnc", "qmp_uds_dnc"]
#: extra flags per (env, method); the per-method paper settings come from configs/ENV.yaml
EXTRA: dict[tuple[str, str], list[str]] = {}
#: flags added to every run (--flags)
COMMON: list[str] = []


def run_rows(argv: list[str]) -> tuple[list[float], list[float]]:
    """Time and ItrTime columns of a run (in a temporary folder)."""
    config = resolve_config(argv)
    with tempfile.TemporaryDirectory() as log_dir:
        run_experiment(config, log_dir, stdout=False)
        with open(os.path.join(log_dir, "progress.csv")) as f:
            rows = list(csv.DictReader(f))
    return [float(r["Time"]) for r in rows], [float(r["ItrTime"]) for r in rows]


def steady_increments(times: list[float]) -> list[float]:
    """Wall-clock seconds of each epoch after the first (which fills the buffers)."""
    return [b - a for a, b in zip(times[1:], times[2:], strict=False)]


def seconds_per_epoch(env_id: str, method: str, epochs: int, rounds: int | None, threads: int,
                      flags: Sequence[str] = ()) -> tuple[float, float, int, int]:
    """(steady-state seconds per paper epoch, seconds of the first epoch, paper epochs,
    env steps per paper epoch); `flags` are added after those of --flags."""
    paper_argv = [method, f"--env={env_id}", *EXTRA.get((env_id, method), []), *COMMON,
                  *flags]
    paper = resolve_config(paper_argv)
    argv = [*paper_argv, "--n_epochs", str(epochs), "--torch_threads", str(threads)]
    if rounds is not None:
        argv += ["--steps_per_epoch", str(rounds)]
    times, itr = run_rows(argv)
    steady = steady_increments(times) or itr[1:]
    per_epoch = sum(steady) / len(steady)
    if rounds is not None:  # scale the training part; evaluation happens once per epoch anyway
        train = sum(itr[2:]) / max(1, len(itr[2:]))
        per_epoch += train * (paper.steps_per_epoch / rounds - 1)
    steps_per_epoch = paper.batch_size * paper.steps_per_epoch
    return per_epoch, times[0], paper.n_epochs, steps_per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["JacoReachMT5-v1"])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--epochs", type=int, default=5, help="epochs run per method (>= 3)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per epoch to run (scaled to the paper's steps_per_epoch)")
    parser.add_argument("--threads", type=int, default=2,
                        help="--torch_threads of the runs (training hands one to the background "
                             "evaluation while it runs)")
    parser.add_argument("--flags", default="",
                        help='more run flags for every row, e.g. "--envs_per_task 8"')
    parser.add_argument("--out", default="epoch_speed", help="name of the results table")
    args = parser.parse_args()
    COMMON.extend(args.flags.split())
    rows = []
    for env_id in args.envs:
        for method in args.methods:
            per_epoch, first, n_epochs, steps = seconds_per_epoch(env_id, method, args.epochs,
                                                                  args.rounds, args.threads)
            hours = (first + per_epoch * (n_epochs - 1)) / 3600
            row: list[object] = [env_id, method, args.flags or "-", args.threads, round(first, 1),
                                 round(per_epoch, 2), n_epochs,
                                 f"{n_epochs * steps / 1e6:g}M", round(hours, 2)]
            rows.append(row)
            print(rows[-1], flush=True)
    header = ["env", "method", "flags", "threads", "first epoch s (fills buffers)", "s / epoch",
              "paper epochs", "paper env steps", "projected hours"]
    write_table(args.out, header, rows)


if __name__ == "__main__":
    main()
