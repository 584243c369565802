"""The epoch loop: collect, train, evaluate, log, snapshot.

Per epoch, `steps_per_epoch` rounds of (collect one round in lockstep, run the round's gradient
steps), then an evaluation when `epoch % evaluation_frequency == 0` (and at the last epoch), one
progress row, and a snapshot of the networks. The first round(s) fill the buffers to
`min_buffer_size` (see Learner). With a background evaluation, the row of an evaluated epoch is
written once its evaluation returns (during the next epoch); rows always appear in epoch order.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learning.checkpoint import CheckpointWriter
from learning.evaluation import BackgroundEvaluation, InlineEvaluation
from learning.learner import Learner
from learning.run_logger import RunLogger, format_matrix, mixture_probabilities
from learning.runtime import TrainingThreads
from learning.sampler import Collector, Episode


@dataclass
class Schedule:
    n_epochs: int
    steps_per_epoch: int
    batch_size: int
    evaluation_frequency: int


def _per_task(episodes: list[Episode], task: int) -> list[Episode]:
    return [e for e in episodes if e.task == task]


class Trainer:
    """Runs a multi-task experiment and writes its logs and snapshots under the logger's folder.

    `evaluation` evaluates under the authors' prefixes: "Evaluation" (QMP methods: the Q-switch
    mixture; other methods: each task's own policy) and, for QMP, "Evaluation/p" (each task's own
    policy). The progress line's success is `Evaluation/SuccessRate`, the authors' default key.
    """

    def __init__(
        self,
        *,
        schedule: Schedule,
        learner: Learner,
        collector: Collector,
        evaluation: InlineEvaluation | BackgroundEvaluation,
        logger: RunLogger,
        log_mixture: bool,
        checkpoints: CheckpointWriter | None = None,
        snapshot_gap: int = 1,
        snapshot_interval: float = 0.0,
        videos: Callable[[int], list[str]] | None = None,
        vis_freq: int = -1,
        exact_env_state: bool = True,
        threads: int | None = None,
    ) -> None:
        self.schedule = schedule
        self.learner = learner
        self.collector = collector
        self.evaluation = evaluation
        self.logger = logger
        self.log_mixture = log_mixture
        self.checkpoints = checkpoints
        self.snapshot_gap = snapshot_gap
        self.snapshot_interval = snapshot_interval
        self.videos = videos
        self.vis_freq = vis_freq
        self.exact_env_state = exact_env_state
        #: with several threads and a background evaluation, one is handed to the worker while
        #: it computes (see learning.runtime)
        self._pace: Callable[[], None] | None = None
        if threads is not None and threads > 1 and evaluation.background:
            self._pace = TrainingThreads(threads, evaluation.busy)
        self.start_epoch = 0
        self._pending: dict[str, float] | None = None  # a row waiting for its evaluation
        self._time_offset = 0.0
        self._last_success = math.nan
        self.num_tasks = learner.num_tasks
        self.last_metrics: dict[str, float] = {}

    def state_dict(self, epoch: int, pending: dict[str, float] | None, elapsed: float
                   ) -> dict[str, Any]:
        """Everything needed to continue after `epoch` exactly as if never stopped, sharing no
        memory with the live objects (it is written while training goes on; the buffer's
        state is a fresh copy already, the rest is small and copied here)."""
        small = copy.deepcopy({
            "sac": self.learner.sac.state_dict(),
            "learner": {"gradient_steps": self.learner.gradient_steps},
            "collector": self.collector.state_dict(self.exact_env_state),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate()},
            "trainer": {"pending": pending, "time": elapsed},
        })
        return {**small, "buffer": self.learner.buffer.state_dict()}

    def close(self) -> None:
        """Finish the checkpoint in flight and release the envs, the evaluation and the logs."""
        try:
            if self.checkpoints is not None:
                self.checkpoints.close()
        finally:
            self.logger.close()
            self.collector.venv.close()
            self.evaluation.close()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint taken after epoch `state["epoch"]`."""
        self.learner.sac.load_state_dict(state["sac"])
        self.learner.buffer.load_state_dict(state["buffer"])
        self.learner.gradient_steps = int(state["learner"]["gradient_steps"])
        self.collector.load_state_dict(state["collector"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        self.start_epoch = int(state["epoch"]) + 1
        self._pending = state["trainer"]["pending"]
        self._time_offset = float(state["trainer"]["time"])

    def train(self) -> dict[str, float]:
        start = time.perf_counter() - self._time_offset
        self._last_checkpoint = time.perf_counter()
        pending = self._pending
        if pending is not None:  # its evaluation was lost with the stopped run: redo it
            self.evaluation.start(int(pending["Epoch"]))
            if not self.evaluation.background:
                self._write_row(pending, self.evaluation.finish())
                pending = None
        for epoch in range(self.start_epoch, self.schedule.n_epochs):
            epoch_start = time.perf_counter()
            for _ in range(self.schedule.steps_per_epoch):
                steps = self.learner.steps_to_collect(self.schedule.batch_size)
                if self._pace is not None:
                    self._pace()
                samples = self.collector.collect(steps)
                self.learner.train_round(samples, self._pace)
            self.learner.sac.check_finite(epoch)
            metrics: dict[str, float] = {"Epoch": epoch, "Itr": epoch}
            metrics["TotalEnvSteps"] = self.collector.total_env_steps
            metrics.update(self._train_metrics())
            metrics["Time"] = time.perf_counter() - start
            metrics["ItrTime"] = time.perf_counter() - epoch_start
            if pending is not None:
                self._write_row(pending, self.evaluation.finish())
                pending = None
            last = epoch == self.schedule.n_epochs - 1
            if epoch % self.schedule.evaluation_frequency == 0 or last:
                self.evaluation.start(epoch)
                if self.evaluation.background:
                    pending = metrics
                else:
                    self._write_row(metrics, self.evaluation.finish())
            else:
                self._write_row(metrics, {})
            if self.videos is not None and self.vis_freq > 0 and (
                epoch % self.vis_freq == 0 or last
            ):
                for path in self.videos(epoch):
                    self.logger.text(f"video: {path}")
            if self.checkpoints is not None and (last or self._checkpoint_due(epoch)):
                self._last_checkpoint = time.perf_counter()
                self.checkpoints.submit(epoch, self.state_dict(epoch, pending,
                                                               time.perf_counter() - start))
        if pending is not None:
            self._write_row(pending, self.evaluation.finish())
        if self.checkpoints is not None:
            self.checkpoints.wait()
        return self.last_metrics

    def _checkpoint_due(self, epoch: int) -> bool:
        """Every `snapshot_gap` epochs, once `snapshot_interval` seconds passed since the last
        checkpoint (or the start): which epochs are saved never changes a run's numbers."""
        return ((epoch + 1) % self.snapshot_gap == 0
                and time.perf_counter() - self._last_checkpoint >= self.snapshot_interval)

    def _write_row(self, metrics: dict[str, float], evaluation: dict[str, float]) -> None:
        row = {**metrics, **evaluation}
        self.logger.record_many(row)
        self.logger.dump(int(row["Epoch"]))
        self.last_metrics = row
        success = row.get("Evaluation/SuccessRate", math.nan)
        if not math.isnan(success):
            self._last_success = success
        self.logger.progress(progress_line(row, self.schedule.n_epochs, self._last_success))

    # ------------------------------------------------------------------ metrics
    def _train_metrics(self) -> dict[str, float]:
        n = self.num_tasks
        sac = self.learner.sac
        out: dict[str, float] = {}
        stats = sac.stats.means()
        sac.stats.reset()
        episodes = self.collector.pop_episodes()
        counts = self.collector.reset_counts()
        probs = mixture_probabilities(counts)
        shared = self.learner.shared_data.means()["SharedData"]
        self.learner.shared_data.reset()
        alpha = sac.alpha().tolist()
        buffer_sizes = self.learner.buffer.task_sizes()
        gradient_steps = self.learner.pop_task_gradient_steps()
        for i in range(n):
            prefix = f"Train/LocalPolicy{i}/"
            for name, values in stats.items():
                out[prefix + name] = values[i]
            own = _per_task(episodes, i)
            out[prefix + "AverageReturn"] = _mean([e.ret for e in own])
            out[prefix + "SuccessRate"] = _mean([e.success for e in own])
            out[prefix + "EnvSteps"] = int(counts[i].sum())
            out[prefix + "ReplayBufferSize"] = int(buffer_sizes[i])
            if self.learner.sampling != "mixed":
                out[prefix + "GradientSteps"] = int(gradient_steps[i])
            out[prefix + "CurrentAlpha"] = alpha[i]
            if self.learner.sampling == "sharing":
                out[prefix + "SharedData"] = shared[i]
            if self.log_mixture:
                out[prefix + "MixtureProbs"] = probs[i, i]
                for j in range(n):
                    out[prefix + f"Policy{j}Prob"] = probs[i, j]
        for name, values in stats.items():
            out["Train/" + name] = _mean([v for v in values if not math.isnan(v)])
        out["Train/AverageReturn"] = _mean([e.ret for e in episodes])
        out["Train/SuccessRate"] = _mean([e.success for e in episodes])
        out["Train/NumEpisodes"] = len(episodes)
        out["Train/TotalEnvSteps"] = self.collector.total_env_steps
        out["Train/GradientSteps"] = self.learner.gradient_steps
        out["Train/TargetEntropy"] = sac.target_entropy
        if self.log_mixture:
            self.logger.text(format_matrix(probs, "Mixture matrix (collection, this epoch):"))
        return out


def progress_line(row: dict[str, float], n_epochs: int, success: float) -> str:
    """epoch, env steps, last evaluated success rate, seconds per epoch and time left."""
    epoch = int(row["Epoch"]) + 1
    per_epoch = float(row["Time"]) / epoch
    left = int(per_epoch * (n_epochs - epoch))
    eta = f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"
    filled = int(20 * epoch / n_epochs)
    return (f"[{'#' * filled}{'.' * (20 - filled)}] epoch {epoch}/{n_epochs} | "
            f"{int(row['TotalEnvSteps']):,} env steps | success {success:.2f} | "
            f"{per_epoch:.1f} s/epoch | ETA {eta}")


def _mean(values: list[Any]) -> float:
    return float(np.mean(values)) if len(values) else math.nan
