"""Logging of a run through dowel: progress.csv, TensorBoard, debug.log and a compact stdout table.

Metric names follow the original (`Evaluation/SuccessRate`, `Evaluation/Task{k}/...`, for QMP
methods also `Evaluation/p/...`, `Train/LocalPolicy{i}/...`). The key set is fixed by the first
epoch; a later epoch that lacks a key (e.g. no evaluation that epoch) records NaN, so
progress.csv keeps one schema.

A resumed run reopens the same files: progress.csv keeps its rows before the resume epoch and
appends (dowel's CsvOutput would rewrite the file with its columns in a per-process order), and
TensorBoard purges the events at and after the resume epoch, so no epoch appears twice.

A closed stdout (`run.py ... | head -1`) does not stop a run: a RunLogger that writes to stdout
puts `sys.stdout` behind `PipeSafeStdout`, whose first write that raises BrokenPipeError points
the process's stdout at /dev/null; training and the files go on.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import dowel
import numpy as np
import tabulate
import tensorboardX

from learning.samplers.sampler import Episode

# NaN marks "not measured this epoch" (e.g. no evaluation); tensorboardX warns on every one
logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)

#: the terminal's progress line is cut to this many characters
PROGRESS_WIDTH = 160
#: keys shown on stdout leave out per-task and per-policy entries (they are in progress.csv)
_PER_TASK = re.compile(r"/(Task\d+|LocalPolicy\d+)/")


class PipeSafeStdout:
    """A text stream in front of `stream` (the process's stdout) that outlives its reader: on
    BrokenPipeError (the pipe's reader has exited, e.g. `| head -1`) the file descriptor is
    pointed at /dev/null, so this and every later write, the flush at exit included, succeed
    and write nothing. Everything else is `stream`'s."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def _to_devnull(self) -> None:
        try:
            fd = self.stream.fileno()
        except (OSError, ValueError):  # not backed by a file descriptor: replace the stream
            self.stream = open(os.devnull, "w")
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._to_devnull()
            self.stream.flush()  # what the buffer held goes to /dev/null

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def guard_stdout() -> None:
    """Put `sys.stdout` behind a PipeSafeStdout (once) for the rest of the process."""
    if not isinstance(sys.stdout, PipeSafeStdout):
        sys.stdout = PipeSafeStdout(sys.stdout)  # type: ignore[assignment]


class SummaryStdOutput(dowel.LogOutput):
    """Prints the non-per-task keys of each epoch as a two-column table, and text lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._pending: list[str] = []

    @property
    def types_accepted(self) -> tuple[type, ...]:
        return (dowel.TabularInput, str)

    def record(self, data: Any, prefix: str = "") -> None:
        if isinstance(data, dowel.TabularInput):
            rows = [(k, v) for k, v in sorted(data.as_primitive_dict.items())
                    if not _PER_TASK.search(k)]
            self._pending.append(tabulate.tabulate(rows, floatfmt=".4g"))
            data.mark_str()
        else:
            self._pending.append(str(data))

    def dump(self, step: int | None = None) -> None:
        for text in self._pending:
            print(text, file=self.stream)
        self._pending.clear()
        self.stream.flush()


class ProgressCsvOutput(dowel.LogOutput):
    """progress.csv with a fixed column order; on resume, keeps the rows before `resume_epoch`
    and appends after them."""

    def __init__(self, path: str, resume_epoch: int | None = None) -> None:
        self.path = path
        self.fieldnames: list[str] | None = None
        if resume_epoch is not None and os.path.exists(path):
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.fieldnames = list(reader.fieldnames or []) or None
                kept = [r for r in reader if float(r["Epoch"]) < resume_epoch]
            with open(path, "w", newline="") as f:
                if self.fieldnames:
                    writer = csv.DictWriter(f, fieldnames=self.fieldnames)
                    writer.writeheader()
                    writer.writerows(kept)
            self._file = open(path, "a", newline="")
        else:
            self._file = open(path, "w", newline="")
        self._writer = (None if self.fieldnames is None
                        else csv.DictWriter(self._file, fieldnames=self.fieldnames))

    @property
    def types_accepted(self) -> tuple[type, ...]:
        return (dowel.TabularInput,)

    def record(self, data: Any, prefix: str = "") -> None:
        row = data.as_primitive_dict
        if self._writer is None:
            self.fieldnames = list(row)
            self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames)
            self._writer.writeheader()
        self._writer.writerow(row)
        data.mark_all()

    def dump(self, step: int | None = None) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class _RowOutput(dowel.LogOutput):
    """An output that receives each epoch's whole row at dump time (`write_row`)."""

    _pending: dict[str, float]

    @property
    def types_accepted(self) -> tuple[type, ...]:
        return (dowel.TabularInput,)

    def record(self, data: Any, prefix: str = "") -> None:
        self._pending.update(data.as_primitive_dict)

    def dump(self, step: int | None = None) -> None:
        self.write_row(self._pending, step)
        self._pending = {}

    def write_row(self, row: dict[str, float], step: int | None) -> None:
        raise NotImplementedError


class TensorBoardScalars(_RowOutput):
    """Scalars to TensorBoard with the epoch as step; `purge_step` hides a killed run's events
    from the resume epoch on."""

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self._writer = tensorboardX.SummaryWriter(log_dir, purge_step=purge_step)
        self._pending = {}

    def write_row(self, row: dict[str, float], step: int | None) -> None:
        for key, value in row.items():
            self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandbOutput(_RowOutput):
    """Rows to Weights & Biases, step = epoch. Offline unless WANDB_MODE says otherwise, so no
    account is needed; the run id is kept in the run folder so a resumed run continues it."""

    def __init__(self, log_dir: str, config: dict[str, Any], name: str) -> None:
        import wandb  # optional dependency, checked by the command line

        id_file = os.path.join(log_dir, "wandb_run_id.txt")
        run_id = open(id_file).read().strip() if os.path.exists(id_file) else None
        self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "qmp"), config=config,
                               name=name, dir=log_dir, id=run_id, resume="allow",
                               mode=os.environ.get("WANDB_MODE", "offline"))
        with open(id_file, "w") as f:
            f.write(self._run.id)
        self._pending = {}

    def write_row(self, row: dict[str, float], step: int | None) -> None:
        self._run.log(row, step=step)

    def close(self) -> None:
        self._run.finish()


class RunLogger:
    """All outputs of one run, under `log_dir` (`resume_epoch`: continue a run from that epoch)."""

    def __init__(self, log_dir: str, *, stdout: bool = True, tensorboard: bool = True,
                 resume_epoch: int | None = None,
                 wandb_config: dict[str, Any] | None = None) -> None:
        self.log_dir = log_dir
        self.logger = dowel.Logger()
        self.logger.disable_warnings()
        self.tabular = dowel.TabularInput()
        self.csv = ProgressCsvOutput(os.path.join(log_dir, "progress.csv"), resume_epoch)
        self.logger.add_output(self.csv)
        self._debug_log = dowel.TextOutput(os.path.join(log_dir, "debug.log"),
                                           with_timestamp=True)
        self.logger.add_output(self._debug_log)
        if tensorboard:
            self.logger.add_output(TensorBoardScalars(log_dir, purge_step=resume_epoch))
        if wandb_config is not None:
            name = os.path.basename(os.path.normpath(log_dir))
            self.logger.add_output(WandbOutput(log_dir, wandb_config, name))
        #: on a terminal: one progress line updated in place; otherwise tables and plain lines
        self.stdout = stdout
        if stdout:
            guard_stdout()
        self.tty = stdout and sys.stdout.isatty()
        self._summary: SummaryStdOutput | None = None
        if stdout and not self.tty:
            self._summary = SummaryStdOutput()
            self.logger.add_output(self._summary)
        self._progress_line = ""
        self._schema: list[str] | None = self.csv.fieldnames

    def record(self, key: str, value: float) -> None:
        self.tabular.record(key, float(value))

    def record_many(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.record(key, value)

    def text(self, message: str) -> None:
        self.logger.log(message)

    def dump(self, step: int) -> None:
        keys = list(self.tabular.as_primitive_dict)
        if self._schema is None:
            self._schema = keys
        else:
            unknown = set(keys) - set(self._schema)
            if unknown:
                raise RuntimeError(f"metrics appeared after the first epoch: {sorted(unknown)}")
            for key in self._schema:
                if key not in self.tabular.as_primitive_dict:
                    self.record(key, math.nan)
        self.logger.log(self.tabular)
        self.logger.dump_all(step)
        self.tabular.clear()

    def progress(self, line: str) -> None:
        """On a terminal, redraw the one progress line; otherwise print it."""
        self._progress_line = line
        if self.tty:
            sys.stdout.write("\r" + line.ljust(100)[:PROGRESS_WIDTH])
            sys.stdout.flush()
        elif self.stdout:
            print(line, flush=True)

    def notice(self, message: str) -> None:
        """A line shown at once (also on a terminal, above the progress line) and kept in
        debug.log, e.g. before a long step such as rendering videos."""
        self.logger.log(message)
        self._debug_log.dump()
        if self._summary is not None:
            self._summary.dump()  # text lines logged before it, then the notice
        elif self.tty:
            # padded over the whole progress line drawn before
            width = max(100, len(self._progress_line[:PROGRESS_WIDTH]))
            sys.stdout.write("\r" + message.ljust(width) + "\n")
            if self._progress_line:
                sys.stdout.write("\r" + self._progress_line.ljust(100)[:PROGRESS_WIDTH])
            sys.stdout.flush()

    def close(self) -> None:
        if self.tty:
            sys.stdout.write("\n")
        self.logger.remove_all()


def episode_metrics(episodes: Iterable[Episode], extra_names: Iterable[str]) -> dict[str, float]:
    """The original's evaluation statistics of a set of episodes, plus the env's extra metrics
    (`extra_names`); NaN where there is no episode to average."""
    eps = list(episodes)
    extra_names = sorted(extra_names)
    if not eps:
        return {name: math.nan for name in (*_EPISODE_METRIC_NAMES, *extra_names)}
    returns = np.array([e.ret for e in eps])
    metrics = {
        "AverageReturn": float(returns.mean()),
        "StdReturn": float(returns.std()),
        "MaxReturn": float(returns.max()),
        "MinReturn": float(returns.min()),
        "AverageDiscountedReturn": float(np.mean([e.discounted_return for e in eps])),
        "AverageEpisodeLength": float(np.mean([e.length for e in eps])),
        "NumEpisodes": float(len(eps)),
        "TerminationRate": float(np.mean([e.terminated for e in eps])),
        "SuccessRate": float(np.mean([e.success for e in eps])),
    }
    for name in extra_names:
        values = [e.extras[name] for e in eps if name in e.extras]
        metrics[name] = float(np.mean(values)) if values else math.nan
    return metrics


_EPISODE_METRIC_NAMES = (
    "AverageReturn", "StdReturn", "MaxReturn", "MinReturn", "AverageDiscountedReturn",
    "AverageEpisodeLength", "NumEpisodes", "TerminationRate", "SuccessRate",
)


def mixture_probabilities(counts: np.ndarray) -> np.ndarray:
    """Row-normalised N x N counts: (i, j) is the share of task i's steps acted by policy j."""
    totals = counts.sum(axis=1, keepdims=True)
    probs = np.full(counts.shape, np.nan)
    np.divide(counts, totals, out=probs, where=totals > 0)
    return probs


def format_matrix(probs: np.ndarray, title: str) -> str:
    """The mixture matrix as a small text table (rows: task, columns: acting policy)."""
    n = probs.shape[0]
    rows = [[f"task {i}"] + [f"{p:.2f}" for p in probs[i]] for i in range(n)]
    return title + "\n" + tabulate.tabulate(rows, headers=[""] + [f"pi_{j}" for j in range(n)])
