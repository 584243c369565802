"""Where an epoch's time goes: the seconds of each part of a few epochs, run on one core.

Epochs of a fresh run are cheaper than late ones (an arm that has learned to move meets the
joint limits and the floor, and contacts cost the simulator), so the profile can start from a
run's newest checkpoint: the trained networks, buffers and env states of that run.

    python bench/epoch_profile.py --run RUN_DIR [--epochs K]
    python bench/epoch_profile.py --method qmp_dnc --env JacoReachMT5-v1 [--epochs K]

Everything runs in the one process on one thread (evaluation inline), so the parts add up to the
epoch and their sum, halved, bounds any schedule of the same work on 2 cores from below. Parts:
collection and evaluation each split into network inference (the behaviour's forward passes),
MuJoCo (`mujoco.mj_step`), the env's own Python (its step minus MuJoCo) and the rest (vector env,
episode tracking, buffer writes); training = the gradient updates with their batch sampling.

With `--run`, the run's own progress.csv is summarised too: wall-clock seconds per epoch over each
tenth of the run, and its total.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import mujoco
from common import write_table

from experiment_utils import load_run_config, resolve_config
from garage_experiments import build_trainer
from learning.runs.checkpoint import checkpoint_paths, load_checkpoint
from learning.runs.trainer import Trainer


class PartTimer:
    """Seconds spent in wrapped calls, by (phase, part); phases are the outer calls."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.phase = "other"

    def wrap(self, fn: Callable[..., Any], part: str, phase: bool = False) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            outer = self.phase
            if phase:
                self.phase = part
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[(self.phase, part)] += time.perf_counter() - start
                self.phase = outer

        return timed


def instrument(trainer: Trainer, timer: PartTimer) -> None:
    """Wrap the trainer's phases, behaviours, env steps and MuJoCo's step with `timer`."""
    collector, learner = trainer.collector, trainer.learner
    evaluator = trainer.evaluation.evaluator  # type: ignore[union-attr]  (inline evaluation)
    collector.collect = timer.wrap(collector.collect, "collect", phase=True)
    learner.train_round = timer.wrap(learner.train_round, "train", phase=True)
    evaluator.run = timer.wrap(evaluator.run, "evaluate", phase=True)
    behaviours = [collector.behaviour, *trainer.evaluation.behaviours.values()]  # type: ignore
    for behaviour in behaviours:
        behaviour.act = timer.wrap(behaviour.act, "inference")
    for env in [*collector.venv.envs, *evaluator.venv.envs]:
        env.step = timer.wrap(env.step, "env")
    mujoco.mj_step = timer.wrap(mujoco.mj_step, "mujoco")


def profile_rows(timer: PartTimer, wall: float, epochs: int) -> list[list[object]]:
    """The table rows: seconds per epoch of every part and its share of the epoch."""
    s = timer.seconds
    rows: list[tuple[str, float]] = []
    for phase in ("collect", "evaluate"):
        total, inference = s[(phase, phase)], s[(phase, "inference")]
        env, mj = s[(phase, "env")], s[(phase, "mujoco")]
        rows += [(f"{phase}: network inference", inference), (f"{phase}: MuJoCo", mj),
                 (f"{phase}: env Python", env - mj), (f"{phase}: rest", total - inference - env)]
    rows.append(("train: gradient updates", s[("train", "train")]))
    phases = sum(s[(p, p)] for p in ("collect", "train", "evaluate"))
    rows.append(("log, rest", wall - phases))  # no checkpoint is written here
    out: list[list[object]] = [[name, round(sec / epochs, 3), f"{sec / wall:.0%}"]
                               for name, sec in rows]
    out.append(["epoch on 1 core", round(wall / epochs, 3), "100%"])
    out.append(["half of it: least possible on 2 cores", round(wall / epochs / 2, 3), "50%"])
    return out


def run_tenths(run_dir: str) -> list[list[object]]:
    """Seconds per epoch over each tenth of a run, from its progress.csv."""
    with open(os.path.join(run_dir, "progress.csv")) as f:
        times = [float(r["Time"]) for r in csv.DictReader(f)]
    n = len(times)
    rows: list[list[object]] = []
    for k in range(10):
        lo, hi = max(1, k * n // 10), (k + 1) * n // 10
        if hi > lo:
            rows.append([f"epochs {lo}-{hi - 1}", round((times[hi - 1] - times[lo - 1])
                                                        / (hi - lo), 3)])
    rows.append([f"whole run ({n} epochs), hours", round(times[-1] / 3600, 3)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder: profile from its newest checkpoint")
    parser.add_argument("--method", default="qmp_dnc", help="fresh run: the method")
    parser.add_argument("--env", default="JacoReachMT5-v1", help="fresh run: the env")
    parser.add_argument("--epochs", type=int, default=5, help="epochs profiled")
    parser.add_argument("--out", default="epoch_profile", help="name of the results table")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    state = None
    if args.run:
        paths = checkpoint_paths(args.run)
        if not paths:
            parser.error(f"{args.run} holds no checkpoint to profile from")
        config = load_run_config(args.run)
        state = load_checkpoint(paths[-1])
        state["trainer"]["pending"] = None  # its evaluation is not part of the profiled epochs
        start = int(state["epoch"]) + 1
    else:
        config = resolve_config([args.method, f"--env={args.env}"])
        start = 0
    # the first epoch run here (a fresh run's buffer fill, or the resumed run's warm-up) is not
    # profiled: the timer starts when its row is written
    config = replace(config, n_epochs=start + 1 + args.epochs, torch_threads=1,
                     eval_in_background=False, vis_freq=-1)
    with tempfile.TemporaryDirectory() as log_dir:
        trainer = build_trainer(config, log_dir, stdout=False)
        if state is not None:
            trainer.load_state_dict(state)
        trainer.checkpoints = None  # none is written (the wrapped envs would not pickle)
        timer = PartTimer()
        instrument(trainer, timer)
        marks: list[float] = []
        write_row = trainer._write_row

        def row_then_mark(metrics: dict[str, float], evaluation: dict[str, float]) -> None:
            write_row(metrics, evaluation)
            marks.append(time.perf_counter())
            if int(metrics["Epoch"]) == start:
                timer.seconds.clear()

        trainer._write_row = row_then_mark  # type: ignore[method-assign]
        try:
            trainer.train()
        finally:
            trainer.close()
    print(f"{config.method} on {config.env}, epochs {start + 1}-{start + args.epochs}")
    write_table(args.out, ["part", "s / epoch", "share"],
                profile_rows(timer, marks[-1] - marks[0], args.epochs))
    if args.run:
        write_table(args.out + "_run", ["epochs", "s / epoch"], run_tenths(args.run))


if __name__ == "__main__":
    main()
