"""The epoch loop: collect, train, evaluate, log, snapshot.

Per epoch, `steps_per_epoch` rounds of (collect one round of whole episodes, run the round's
gradient steps), then an evaluation when `epoch % evaluation_frequency == 0` (and at the last
epoch), one progress row, and a checkpoint when one is due. The first round(s) fill the buffers
to `min_buffer_size` (see Learner). With a background evaluation, the row of an evaluated epoch
is written once its evaluation returns (during the next epoch); rows always appear in epoch
order. A stop signal ends the run with a checkpoint of the last finished epoch (see `train`).
"""

from __future__ import annotations

import collections
import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learning.algorithms.learner import Learner
from learning.runs.checkpoint import CheckpointWriter, checkpoint_path
from learning.runs.evaluation import BackgroundEvaluation, InlineEvaluation
from learning.runs.run_logger import RunLogger, format_matrix, mixture_probabilities
from learning.runs.runtime import TrainingThreads
from learning.runs.stopping import RunStopped, StopRequested, StopSignals
from learning.samplers.sampler import Collector, Episode

#: the progress line's s/epoch is the mean wall time of at most this many recent epochs
RECENT_EPOCHS = 20


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
        #: the loop calls `self.videos`, which announces the rendering, times it (the ETA
        #: leaves that time out of s/epoch, see `_write_row`) and calls `videos`
        self._record_videos = videos
        self.videos = None if videos is None else self._render_videos
        self.vis_freq = vis_freq
        self.exact_env_state = exact_env_state
        #: with several threads and a background evaluation, one is handed to the worker while
        #: it computes (see learning.runs.runtime)
        self._pace: Callable[[], None] | None = None
        if threads is not None and threads > 1 and evaluation.background:
            self._pace = TrainingThreads(threads, evaluation.busy)
        self.start_epoch = 0
        self._pending: dict[str, float] | None = None  # a row waiting for its evaluation
        self._time_offset = 0.0
        self._last_success = math.nan
        self.num_tasks = learner.num_tasks
        self.last_metrics: dict[str, float] = {}
        #: (epoch, Time) of the last row written, and wall seconds per epoch of the last
        #: RECENT_EPOCHS epochs measured by this process (see `_write_row`)
        self._last_row: tuple[int, float] | None = None
        self._epoch_seconds: collections.deque[float] = collections.deque(maxlen=RECENT_EPOCHS)
        #: rendering seconds per epoch with videos, not yet taken out of an epoch's wall time,
        #: and of every render so far
        self._video_seconds: dict[int, float] = {}
        self._render_seconds: list[float] = []
        #: SIGINT / SIGTERM, checked at safe points (None: a signal acts as usual)
        self.stop: StopSignals | None = None
        #: (epoch, state without the buffer) at the end of the last finished epoch, kept so
        #: that a stop can checkpoint it; the buffer is rolled back to its mark instead
        self._finished: tuple[int, dict[str, Any]] | None = None
        self._last_submitted = -1

    def state_dict(self, epoch: int, pending: dict[str, float] | None, elapsed: float
                   ) -> dict[str, Any]:
        """Everything needed to continue after `epoch` exactly as if never stopped, sharing no
        memory with the live objects (it is written while training goes on; the buffer's
        state is a fresh copy already, the rest is small and copied here)."""
        return {**self._small_state(pending, elapsed), "buffer": self.learner.buffer.state_dict()}

    def _small_state(self, pending: dict[str, float] | None, elapsed: float) -> dict[str, Any]:
        """The state without the replay buffer, copied."""
        return copy.deepcopy({
            "sac": self.learner.sac.state_dict(),
            "learner": self.learner.state_dict(),
            "collector": self.collector.state_dict(self.exact_env_state),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate()},
            "trainer": {"pending": pending, "time": elapsed},
        })

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
        self.learner.load_state_dict(state["learner"])
        self.collector.load_state_dict(state["collector"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        self.start_epoch = int(state["epoch"]) + 1
        self._pending = state["trainer"]["pending"]
        self._time_offset = float(state["trainer"]["time"])

    def _check_stop(self) -> None:
        if self.stop is not None:
            self.stop.check()

    def train(self) -> dict[str, float]:
        """Run the remaining epochs. On a stop signal (see `stop`), write a checkpoint of the
        last finished epoch and raise RunStopped."""
        self.collector.venv.before_step = self._check_stop
        self.evaluation.check = self._check_stop
        try:
            return self._train()
        except StopRequested as request:
            raise self._stopped(request.signum) from None

    def _stopped(self, signum: int) -> RunStopped:
        """Checkpoint the last finished epoch: the buffers go back to their mark and the rest
        comes from the copy taken at that epoch's end."""
        begin = time.perf_counter()
        self.collector.venv.before_step = None
        self.evaluation.check = None
        if self.checkpoints is None:
            return RunStopped(signum, self.start_epoch - 1, None, 0.0)
        if self._finished is None:  # no epoch finished here: the resumed-from one stays
            kept = checkpoint_path(self.checkpoints.run_dir, self.start_epoch - 1)
            return RunStopped(signum, self.start_epoch - 1,
                              kept if self.start_epoch > 0 else None, 0.0)
        epoch, small = self._finished
        if self._last_submitted != epoch:
            self.learner.buffer.rollback()
            self.checkpoints.submit(epoch, {**small, "buffer": self.learner.buffer.state_dict()})
        self.checkpoints.wait()
        return RunStopped(signum, epoch, checkpoint_path(self.checkpoints.run_dir, epoch),
                          time.perf_counter() - begin)

    def _between_updates(self) -> None:
        if self._pace is not None:
            self._pace()
        self._check_stop()

    def _train(self) -> dict[str, float]:
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
                self.learner.train_round(samples, self._between_updates)
            distillation_loss = self.learner.after_epoch(epoch)
            self.learner.sac.check_finite(epoch)
            metrics: dict[str, float] = {"Epoch": epoch, "Itr": epoch}
            if distillation_loss is not None:
                metrics["Train/DistillationLoss"] = distillation_loss
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
            if self.checkpoints is not None:  # (a run without checkpoints keeps no state)
                small = self._small_state(pending, time.perf_counter() - start)
                if last or epoch == 0 or self._checkpoint_due(epoch):
                    self._last_checkpoint = time.perf_counter()
                    self.checkpoints.submit(epoch, {**small,
                                                    "buffer": self.learner.buffer.state_dict()})
                    self._last_submitted = epoch
                self._finished = (epoch, small)
                self.learner.buffer.mark()
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
        """Log one epoch's row: for QMP its mixture matrix first (labelled with the epoch, so
        blocks stay in epoch order with a background evaluation), then the row, then the
        progress line."""
        row = {**metrics, **evaluation}
        epoch = int(row["Epoch"])
        if self.log_mixture:
            n = self.num_tasks
            probs = np.array([[row.get(f"Train/LocalPolicy{i}/Policy{j}Prob", math.nan)
                               for j in range(n)] for i in range(n)])
            title = (f"Mixture matrix of epoch {epoch} "
                     "(collection; row: task, column: acting policy):")
            self.logger.text(format_matrix(probs, title))
        self.logger.record_many(row)
        self.logger.dump(epoch)
        self.last_metrics = row
        success = row.get("Evaluation/SuccessRate", math.nan)
        if not math.isnan(success):
            self._last_success = success
        self._measure_epoch(row)
        n_epochs = self.schedule.n_epochs
        seconds = list(self._epoch_seconds)
        self.logger.progress(progress_line(
            row, n_epochs, self._last_success,
            seconds_per_epoch=float(np.mean(seconds)) if seconds else math.nan,
            measured=len(seconds),
            video_seconds=(float(np.mean(self._render_seconds)) if self._render_seconds
                           else math.nan),
            renders_left=self._renders_after(epoch),
        ))

    # ------------------------------------------------------------------ pace
    def _measure_epoch(self, row: dict[str, float]) -> None:
        """Add the wall seconds of the row's epoch to the recent ones: its `Time` less the
        previous row's and less the videos rendered in between. Left out: an epoch without the
        previous row written by this process (the first one, and the first after a resume)
        and an epoch that filled the buffers (`_warm_up_epoch`)."""
        epoch, now = int(row["Epoch"]), float(row["Time"])
        last, self._last_row = self._last_row, (epoch, now)
        video = self._video_seconds.pop(epoch - 1, 0.0)
        if (last is not None and last[0] == epoch - 1 and last[1] >= self._time_offset
                and not self._warm_up_epoch(row)):
            self._epoch_seconds.append(now - last[1] - video)

    def _warm_up_epoch(self, row: dict[str, float]) -> bool:
        """Whether the row's epoch began with a buffer below min_buffer_size (so it collected
        warm-up rounds): a buffer held its end size less the transitions it stored this epoch
        (`EnvSteps` counts stored steps), unless it is full (then it evicted some)."""
        n = self.num_tasks
        sizes = np.array([row.get(f"Train/LocalPolicy{i}/ReplayBufferSize", math.nan)
                          for i in range(n)])
        stored = np.array([row.get(f"Train/LocalPolicy{i}/EnvSteps", math.nan)
                           for i in range(n)])
        capacity = self.learner.buffer.capacity
        minimum = self.learner.min_buffer_size
        if self.learner.sampling == "mixed":  # one buffer for all tasks
            return bool(sizes.sum() < capacity and sizes.sum() - stored.sum() < minimum)
        return bool(((sizes < capacity) & (sizes - stored < minimum)).any())

    def _renders_after(self, epoch: int) -> int:
        """Video renders still to come after `epoch`: at multiples of vis_freq and the last."""
        last = self.schedule.n_epochs - 1
        if self._record_videos is None or self.vis_freq <= 0 or epoch >= last:
            return 0
        return last // self.vis_freq - epoch // self.vis_freq + (last % self.vis_freq != 0)

    def _render_videos(self, epoch: int) -> list[str]:
        """`videos(epoch)`, announced on stdout before it starts and timed."""
        assert self._record_videos is not None
        # build_trainer records each task under "own" and, for QMP methods (the ones that log
        # the mixture), also under "mixture"
        count = self.num_tasks * (2 if self.log_mixture else 1)
        self.logger.notice(f"epoch {epoch}: rendering {count} videos ...")
        begin = time.perf_counter()
        paths = self._record_videos(epoch)
        seconds = time.perf_counter() - begin
        self._video_seconds[epoch] = seconds
        self._render_seconds.append(seconds)
        self.logger.notice(f"epoch {epoch}: {len(paths)} videos rendered in {seconds:.1f} s "
                           "(left out of s/epoch)")
        return paths

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
        return out


def progress_line(
    row: dict[str, float],
    n_epochs: int,
    success: float,
    *,
    seconds_per_epoch: float = math.nan,
    measured: int = 0,
    video_seconds: float = math.nan,
    renders_left: int = 0,
) -> str:
    """The progress line of a row: its 0-based epoch out of 0..n_epochs-1 (as progress.csv's
    `Epoch`), env steps, the last evaluated success rate, and the time left.

    `seconds_per_epoch` is the mean wall time of `measured` recent epochs (NaN: none measured
    yet); the ETA is that times the epochs left plus, when videos are still to be rendered,
    `renders_left` times `video_seconds` (the mean time of a render so far).
    """
    epoch = int(row["Epoch"])
    filled = int(20 * (epoch + 1) / n_epochs)
    line = (f"[{'#' * filled}{'.' * (20 - filled)}] epoch {epoch} of 0-{n_epochs - 1} | "
            f"{int(row['TotalEnvSteps']):,} env steps | success {success:.2f} | ")
    if measured == 0 or math.isnan(seconds_per_epoch):
        return line + "s/epoch not measured yet | ETA --"
    left = seconds_per_epoch * max(0, n_epochs - 1 - epoch)
    line += f"{seconds_per_epoch:.1f} s/epoch (last {measured})"
    if renders_left > 0 and not math.isnan(video_seconds):
        left += renders_left * video_seconds
        line += f" + videos {video_seconds:.0f} s x {renders_left}"
    left_s = int(round(left))
    return line + f" | ETA {left_s // 3600}:{left_s % 3600 // 60:02d}:{left_s % 60:02d}"


def _mean(values: list[Any]) -> float:
    return float(np.mean(values)) if len(values) else math.nan
