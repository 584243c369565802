"""Plot learning curves and QMP mixture matrices from run folders.

Usage::

    python plot.py RUN_DIR [RUN_DIR ...] [--out DIR] [--metric NAME] [--policy {mixture,own}]
                   [--smooth K]

Each RUN_DIR is a run folder (one holding `progress.csv` and `config.yaml`) or any folder above
run folders: they are found recursively. Runs that cannot be read (no config, no logged epoch yet,
missing columns) are skipped with a one-line warning. When no usable run is found, or no run has
the metric, one `plot.py: error: ...` line is printed and the exit code is 2.

What is drawn, written as PNG and PDF into --out (default ./plots):

- `curves_ENV.{png,pdf}`: the metric against environment steps for every method run on ENV, the
  mean over seeds with a shaded spread (standard deviation with 3 seeds or more, min-max below).
  Rows where the metric is NaN (epochs without evaluation) are dropped. As in the paper, a method
  and its +QMP variant share a colour (blue Separated: dnc_sac / qmp_dnc, pink Parameters:
  mtsac / qmp_sac, green Data: uds_dnc / qmp_uds_dnc, grey single-network sac), solid with QMP and
  dashed without. With several envs, `curves_all-envs.{png,pdf}` also has one panel per env.
  The default metric is Evaluation/SuccessRate, except Evaluation/AverageReturn for Walker envs;
  --metric NAME uses NAME everywhere (and adds it to the file names). --smooth K takes a trailing
  moving average over K logged points of each run before averaging seeds.
  Evaluation keys are the authors': QMP methods log the Q-switch mixture under `Evaluation/` and
  each task's own policy under `Evaluation/p/`; other methods log their own policy under
  `Evaluation/` only. --policy mixture (default) plots the `Evaluation/` key of every run (the
  mixture for QMP methods); --policy own plots `Evaluation/p/` for QMP methods and `Evaluation/`
  for the others (files get `_own-policy`). See `resolve_metric` for how --metric combines with
  --policy. Legend, title and file names say which one is shown. Runs logged before these keys
  (own policy under `Evaluation/`, mixture under `Evaluation/Mixture/`) are read with their
  meanings.
- `mixture_ENV_METHOD.{png,pdf}` for QMP runs: the N x N mixture matrix
  `Train/LocalPolicy{i}/Policy{j}Prob` (row: task i, column: the policy that acted, share of task
  i's training steps), averaged over the epochs of the first, middle and last third of training
  and then over seeds.

Runs are grouped (their seeds averaged) by env, method and every config.yaml setting that can
change results (RESULT_KEYS); settings that cannot (NOT_RESULT_KEYS: seed, n_epochs, log_dir,
torch_threads, checkpoint, video and logging settings, provenance) and keys in neither list are
ignored. A replay capacity that a run never filled counts as any other such capacity. Where one
env and method has several groups, each curve's name adds the settings that differ between them:
`Separated + QMP (qmp_dnc, layer_norm=True, mixture, 3 seeds)`. n_epochs is not a grouping key:
up to an epoch, a run computes the same whatever its n_epochs (runs may be extended by resuming).
Seeds that logged the same number of epochs but slightly different steps are interpolated onto
the steps they all cover. Seeds of one group that logged different numbers of epochs get a
warning (one line per group: the seeds of each length, and where the seed count drops), and the
curve goes on to the end of the longest: each point is the mean (and spread) of the seeds that
reach it, and a `|` marks where the count drops. Repeated seeds in a group are warned about too.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import yaml
from matplotlib.axes import Axes
from matplotlib.figure import Figure

PROG = "plot.py"
STEPS = "TotalEnvSteps"
EPOCH = "Epoch"
DEFAULT_METRIC = "Evaluation/SuccessRate"
RETURN_METRIC = "Evaluation/AverageReturn"
EVALUATION = "Evaluation/"
#: QMP methods: each task's own policy (the mixture is under EVALUATION)
OWN_PREFIX = "Evaluation/p/"
#: runs logged before the authors' keys were adopted: the mixture, own policy under EVALUATION
LEGACY_MIXTURE_PREFIX = "Evaluation/Mixture/"
POLICIES = ("mixture", "own")
#: what a curve shows
MIXTURE_SHOWN = "mixture"
OWN_SHOWN = "own policy"
SHOWN_LONG = {MIXTURE_SHOWN: "mixture (Q-switch acting)", OWN_SHOWN: "own policy of each task"}
MIXTURE_KEY = "Train/LocalPolicy{i}/Policy{j}Prob"

#: method -> (family, with QMP); the paper's names of the families
METHOD_FAMILY: dict[str, tuple[str, bool]] = {
    "dnc_sac": ("Separated", False),
    "qmp_dnc": ("Separated", True),
    "mtsac": ("Parameters", False),
    "qmp_sac": ("Parameters", True),
    "uds_dnc": ("Data", False),
    "qmp_uds_dnc": ("Data", True),
    "sac": ("SAC", False),
}
FAMILY_COLOR = {
    "Separated": "#1f77b4",  # blue
    "Parameters": "#e377c2",  # pink
    "Data": "#2ca02c",  # green
    "SAC": "#7f7f7f",  # grey
}
#: colours for methods outside the table
EXTRA_COLORS = ["#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#d62728"]
#: markers of the 2nd, 3rd, ... settings group of one method in a panel (same colour and style)
VARIANT_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

#: config.yaml keys that can change a run's results: runs are grouped (their seeds averaged)
#: only when all of these are equal, besides env and method. Keys missing from a config count as
#: the value "unset".
RESULT_KEYS = (
    "method", "env", "num_tasks", "batch_size", "gradient_steps_per_itr", "min_buffer_size",
    "buffer_batch_size", "steps_per_epoch", "lr", "hidden_sizes", "discount",
    "target_update_tau", "reward_scale", "target_entropy", "num_evaluation_episodes",
    "evaluation_frequency", "policy_architecture", "Q_architecture", "include_task_id",
    "policy_sampling_freq", "sharing_quantile", "layer_norm", "kl_coeff", "qswitch_critic",
    "replay_buffer_size", "sampler_type", "sparse_tasks", "envs_per_task", "use_pc_grad",
    "skip_alpha_pc_grad", "grad_clip", "regularize_representation", "distillation_period",
    "distillation_n_epochs", "unsupervised",
)
#: RESULT_KEYS added after runs were first written, with the value runs without them used (the
#: flag's default): an older run groups with a newer one at that default
LATER_KEYS: dict[str, object] = {
    "envs_per_task": 1, "sampler_type": "local", "use_pc_grad": False,
    "skip_alpha_pc_grad": True, "grad_clip": None, "regularize_representation": False,
    "distillation_period": 0, "distillation_n_epochs": 100, "unsupervised": True,
}
#: config.yaml keys that do not change results, so runs differing in them are still seeds of one
#: group. Any key in neither list is ignored as well (e.g. the `provenance` mapping or git
#: commit, host and package versions: where and from what a run came, not what it computed).
NOT_RESULT_KEYS = (
    "seed",  # what a group averages over
    "n_epochs",  # how long a run goes, not what it computes up to an epoch (a run may be
    #              extended by resuming); different lengths in a group are warned about instead
    "log_dir",  # where the run was written
    "torch_threads",  # speed only
    "update_path",  # the same gradients either way (up to rounding)
    "snapshot_gap", "snapshot_interval", "keep_checkpoints",  # checkpointing
    "vis_freq",  # videos
    "wandb", "eval_in_background",  # logging; evaluation numbers are identical either way
    "provenance",  # where a run came from (commit, host, versions)
)
#: replay_buffer_size of a run whose buffers never filled up: equal to any other such capacity
#: (runs of earlier versions lowered the default capacity to the run's total steps)
NEVER_FULL = "never full"


class PlotError(Exception):
    """A problem that stops the whole command (reported as one line, exit code 2)."""


class RunError(Exception):
    """A run folder that cannot be used (reported as a warning, the run is skipped)."""


@dataclass
class Run:
    """One run folder: its config and progress.csv as one float array per column."""

    path: str
    method: str
    env: str
    seed: str
    num_tasks: int | None
    columns: dict[str, np.ndarray] = field(repr=False)
    #: RESULT_KEYS -> the value as text (see setting_text), except method and env
    settings: dict[str, str] = field(default_factory=dict)
    #: config.yaml's n_epochs (the planned length), None when missing
    n_epochs: int | None = None

    @property
    def num_rows(self) -> int:
        return len(self.columns[EPOCH])

    @property
    def num_epochs(self) -> int:
        """Epochs logged (the highest Epoch + 1)."""
        epochs = self.columns[EPOCH][np.isfinite(self.columns[EPOCH])]
        return int(epochs.max()) + 1 if len(epochs) else 0


@dataclass
class Curve:
    """Mean over seeds of one metric and its spread, on a common x grid (env steps)."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    num_runs: int
    spread: str  # "std", "min-max", or "std / min-max" where the seed count changes across 3
    #: seeds averaged at each x (fewer towards the end when seeds cover different lengths)
    counts: np.ndarray

    def drops(self) -> list[tuple[float, int]]:
        """(last x with more seeds, the count after it) at each point where the count drops."""
        where = np.flatnonzero(np.diff(self.counts) < 0)
        return [(float(self.x[i]), int(self.counts[i + 1])) for i in where]


# --------------------------------------------------------------------------- reading runs


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def find_run_dirs(paths: Iterable[str]) -> list[str]:
    """Run folders (holding progress.csv and config.yaml) at or below `paths`, each once, in
    sorted order of discovery. Paths that do not exist are reported and ignored."""
    found: list[str] = []
    seen: set[str] = set()

    def add(directory: str) -> None:
        key = os.path.realpath(directory)
        if key not in seen:
            seen.add(key)
            found.append(directory)

    for path in paths:
        if not os.path.isdir(path):
            _warn(f"skipping {path}: not a folder")
            continue
        for root, dirnames, filenames in os.walk(path):
            dirnames.sort()
            if "progress.csv" in filenames and "config.yaml" in filenames:
                add(root)
            elif "progress.csv" in filenames:
                _warn(f"skipping {root}: progress.csv without config.yaml")
    return found


def read_progress(path: str) -> dict[str, np.ndarray]:
    """progress.csv as float columns. Empty or unparsable cells become NaN; a row with the wrong
    number of fields (a line still being written) is dropped."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise RunError("progress.csv is empty") from None
        rows: list[list[float]] = []
        for row in reader:
            if len(row) != len(header):
                continue
            rows.append([_to_float(cell) for cell in row])
    if not rows:
        raise RunError("no epoch logged yet")
    table = np.array(rows, dtype=float)
    return {name: table[:, k] for k, name in enumerate(header)}


def _to_float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def load_run(path: str) -> Run:
    """Reads one run folder; raises RunError with the reason when it cannot be used."""
    try:
        with open(os.path.join(path, "config.yaml")) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise RunError(f"config.yaml unreadable ({type(error).__name__})") from None
    if not isinstance(config, dict) or not config.get("method") or not config.get("env"):
        raise RunError("config.yaml lacks method or env")
    try:
        columns = read_progress(os.path.join(path, "progress.csv"))
    except OSError as error:
        raise RunError(f"progress.csv unreadable ({type(error).__name__})") from None
    for key in (EPOCH, STEPS):
        if key not in columns:
            raise RunError(f"progress.csv has no {key} column")
    num_tasks = config.get("num_tasks")
    n_epochs = config.get("n_epochs")
    return Run(
        path=path,
        method=str(config["method"]),
        env=str(config["env"]),
        seed=str(config.get("seed", "?")),
        num_tasks=int(num_tasks) if isinstance(num_tasks, int) else None,
        columns=columns,
        settings=result_settings(config, columns[STEPS]),
        n_epochs=int(n_epochs) if isinstance(n_epochs, int) else None,
    )


def setting_text(value: object) -> str:
    """A config value as text that is equal exactly when the values are: numbers by value (1 and
    1.0 alike), booleans as True/False, lists and mappings element by element."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(setting_text(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((str(k), setting_text(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    return str(value)


def result_settings(config: dict[str, object], steps: np.ndarray) -> dict[str, str]:
    """The RESULT_KEYS of a run's config (but method and env) as text; a missing one is its
    LATER_KEYS default, or "unset". A
    replay capacity at least the run's total env steps is NEVER_FULL: no transition was evicted,
    so it behaved as any larger capacity."""
    settings = {key: setting_text(config[key]) if key in config
                else setting_text(LATER_KEYS[key]) if key in LATER_KEYS else "unset"
                for key in RESULT_KEYS if key not in ("method", "env")}
    capacity = config.get("replay_buffer_size")
    finite = steps[np.isfinite(steps)]
    if (isinstance(capacity, int | float) and not isinstance(capacity, bool) and len(finite)
            and capacity >= finite.max()):
        settings["replay_buffer_size"] = NEVER_FULL
    return settings


def load_runs(paths: Iterable[str]) -> list[Run]:
    runs = []
    for directory in find_run_dirs(paths):
        try:
            runs.append(load_run(directory))
        except RunError as error:
            _warn(f"skipping {directory}: {error}")
    return runs


def group_runs(runs: Iterable[Run]) -> dict[str, dict[str, list[Run]]]:
    """env -> group name -> runs (the seeds of one experiment), envs in sorted order, groups in
    the paper's method order. Runs are one group when env, method and all their `settings`
    (RESULT_KEYS) are equal. A group's name is its method, followed by the settings that differ
    between the groups of that env and method when there are several, e.g.
    "qmp_dnc, layer_norm=True"."""
    by_settings: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[Run]]] = {}
    for run in runs:
        key = (run.method, tuple(sorted(run.settings.items())))
        by_settings.setdefault(run.env, {}).setdefault(key, []).append(run)
    groups: dict[str, dict[str, list[Run]]] = {}
    for env in sorted(by_settings):
        named: dict[str, list[Run]] = {}
        for (method, settings), members in by_settings[env].items():
            others = [dict(s) for m, s in by_settings[env] if m == method]
            differing = [k for k, v in settings if any(o.get(k) != v for o in others)]
            named[", ".join([method] + [f"{k}={dict(settings)[k]}" for k in differing])] = members
        groups[env] = {name: named[name] for name in sorted(
            named, key=lambda n: (_method_order(named[n][0].method), n))}
    return groups


def group_method(runs: Sequence[Run]) -> str:
    """The method of a group's runs."""
    return runs[0].method


# --------------------------------------------------------------------------- aggregation


def default_metric(env: str) -> str:
    return RETURN_METRIC if env.startswith("Walker") else DEFAULT_METRIC


def is_qmp(method: str) -> bool:
    if method in METHOD_FAMILY:
        return METHOD_FAMILY[method][1]
    return method.startswith("qmp")


def resolve_metric(metric: str, policy: str | None) -> tuple[str, str | None]:
    """(evaluation metric name, "mixture" or "own") for an evaluation key, (metric, None) for any
    other column. The rule: `Evaluation/p/NAME` is NAME of the own policy (as `--policy own`);
    `Evaluation/NAME` is NAME of the `--policy` choice (default "mixture": the authors' key as
    logged); any other column is read as given, and `--policy` does not apply to it."""
    if metric.startswith(OWN_PREFIX):
        if policy == "mixture":
            raise PlotError(f"--metric {metric} is the own policy's; drop --policy mixture or "
                            f"pass {EVALUATION}{metric[len(OWN_PREFIX):]}")
        return metric[len(OWN_PREFIX):], "own"
    if metric.startswith(EVALUATION):
        return metric[len(EVALUATION):], policy or "mixture"
    if policy is not None:
        raise PlotError(f"--policy applies to {EVALUATION}... metrics only, not {metric}")
    return metric, None


def evaluation_column(run: Run, name: str, policy: str) -> tuple[str, str]:
    """The column of `run` holding evaluation metric `name` under `policy`, and what it shows.
    Non-QMP methods only evaluate their own policy, so both choices read `Evaluation/NAME`."""
    if not is_qmp(run.method):
        return EVALUATION + name, OWN_SHOWN
    if any(key.startswith(LEGACY_MIXTURE_PREFIX) for key in run.columns):
        if policy == "mixture":
            return LEGACY_MIXTURE_PREFIX + name, MIXTURE_SHOWN
        return EVALUATION + name, OWN_SHOWN
    if policy == "own":
        return OWN_PREFIX + name, OWN_SHOWN
    return EVALUATION + name, MIXTURE_SHOWN


def smooth(values: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving average over k points (fewer at the start)."""
    if k <= 1 or len(values) == 0:
        return values.copy()
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - k, 0)
    return (sums[idx] - sums[start]) / (idx - start)


def run_series(run: Run, metric: str, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, metric) of one run, NaN rows dropped, sorted by steps, smoothed over k."""
    if metric not in run.columns:
        raise RunError(f"no column {metric}")
    x, y = run.columns[STEPS], run.columns[metric]
    keep = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(x[keep], kind="stable")
    x, y = x[keep][order], y[keep][order]
    if len(x) == 0:
        raise RunError(f"no finite value of {metric}")
    return x, smooth(y, k)


def aggregate_curves(series: Sequence[tuple[np.ndarray, np.ndarray]],
                     lengths: Sequence[float] | None = None) -> Curve:
    """Mean and spread over runs (seeds), interpolated onto the union of their x values.

    Seeds of one length (`lengths`, e.g. epochs logged; default: each run's last x) are averaged
    on the range all of them cover, as one experiment's seeds that logged slightly different
    steps: the curve starts where the latest-starting run starts and such seeds end together,
    at the end of the shortest of them. Longer seeds go on beyond the shorter ones: each x is
    the mean over the seeds that cover it (`counts`), so no seed is cut to the shortest one's
    length. The spread at each x is the standard deviation over those seeds when they are 3 or
    more, otherwise their min-max."""
    if not series:
        raise ValueError("no series to aggregate")
    sizes = [float(x[-1]) for x, _ in series] if lengths is None else [float(v) for v in lengths]
    if len(sizes) != len(series):
        raise ValueError("one length per series")
    start = max(x[0] for x, _ in series)
    # where each seed's share of the curve ends: with the shortest seed at least as long
    ends = np.array([min(float(x[-1]) for (x, _), other in zip(series, sizes, strict=True)
                         if other >= size) for size in sizes])
    if start > ends.max():  # no common range: fall back to the longest single run's steps
        longest = max(range(len(series)), key=lambda i: len(series[i][0]))
        series, ends = [series[longest]], ends[[longest]]
        start, ends[0] = series[0][0][0], series[0][0][-1]
    stop = ends.max()
    grid = np.unique(np.concatenate([x[(x >= start) & (x <= stop)] for x, _ in series]))
    values = np.stack([np.where(grid <= end, np.interp(grid, x, y), np.nan)
                       for (x, y), end in zip(series, ends, strict=True)])
    counts = np.isfinite(values).sum(axis=0)
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    many = counts >= 3
    low = np.where(many, mean - std, np.nanmin(values, axis=0))
    high = np.where(many, mean + std, np.nanmax(values, axis=0))
    spread = "std" if many.all() else "min-max" if not many.any() else "std / min-max"
    return Curve(grid, mean, low, high, len(series), spread, counts)


def mixture_columns(run: Run) -> int | None:
    """N when the run logged the full N x N mixture matrix, else None."""
    n = run.num_tasks
    if n is None:
        found = [re.fullmatch(r"Train/LocalPolicy(\d+)/Policy\d+Prob", k) for k in run.columns]
        indices = [int(m.group(1)) for m in found if m]
        n = max(indices) + 1 if indices else None
    if n is None or n < 1:
        return None
    if all(MIXTURE_KEY.format(i=i, j=j) in run.columns for i in range(n) for j in range(n)):
        return n
    return None


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over finite entries; NaN where there are none (without numpy's warning)."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=axis)
    totals = np.where(finite, values, 0.0).sum(axis=axis)
    out = np.full(totals.shape, np.nan)
    np.divide(totals, counts, out=out, where=counts > 0)
    return out


def mixture_stages(run: Run, num_stages: int = 3) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The run's mixture matrix averaged over each of `num_stages` consecutive, (nearly) equal
    groups of epochs: an array (stages, N, N) and the (first, last) epoch of each stage. Fewer
    stages when the run has fewer epochs."""
    n = mixture_columns(run)
    if n is None:
        raise RunError("no mixture matrix logged")
    order = np.argsort(run.columns[EPOCH], kind="stable")
    epochs = run.columns[EPOCH][order]
    matrix = np.stack([np.stack([run.columns[MIXTURE_KEY.format(i=i, j=j)][order]
                                 for j in range(n)], axis=-1) for i in range(n)], axis=-2)
    # matrix: (rows, N, N), [row, i, j]
    chunks = np.array_split(np.arange(len(epochs)), min(num_stages, len(epochs)))
    stages = np.stack([_nanmean(matrix[chunk], axis=0) for chunk in chunks])
    spans = [(int(epochs[chunk[0]]), int(epochs[chunk[-1]])) for chunk in chunks]
    return stages, spans


def average_mixtures(runs: Sequence[Run], num_stages: int = 3
                     ) -> tuple[np.ndarray, list[str]]:
    """Per-stage mixture matrices averaged over runs (seeds), and a label per stage: the epoch
    range when every run has the same one, else the stage's place in training."""
    per_run = [mixture_stages(run, num_stages) for run in runs]
    count = min(len(stages) for stages, _ in per_run)
    if any(len(stages) != count for stages, _ in per_run):  # a run with very few epochs
        per_run = [mixture_stages(run, count) for run in runs]
    mean = _nanmean(np.stack([stages for stages, _ in per_run]), axis=0)
    spans = [spans for _, spans in per_run]
    if all(s == spans[0] for s in spans):
        labels = [f"epoch {a}" if a == b else f"epochs {a}-{b}" for a, b in spans[0]]
    else:
        labels = [f"stage {k + 1} of {count}" for k in range(count)]
    return mean, labels


# --------------------------------------------------------------------------- drawing


def method_style(method: str, extra: dict[str, str]) -> tuple[str, str, str]:
    """(label, colour, line style) of a method."""
    if method in METHOD_FAMILY:
        family, qmp = METHOD_FAMILY[method]
        label = family + (" + QMP" if qmp else "")
        return label, FAMILY_COLOR[family], "-" if qmp else "--"
    if method not in extra:
        extra[method] = EXTRA_COLORS[len(extra) % len(EXTRA_COLORS)]
    return method, extra[method], "-" if method.startswith("qmp") else "--"


def _method_order(method: str) -> tuple[int, str]:
    keys = list(METHOD_FAMILY)
    return (keys.index(method) if method in keys else len(keys), method)


def metric_label(metric: str) -> str:
    """Axis label of a column: "Success rate", "Success rate (Task3)" for an evaluation key (of
    either policy; the title says which), "Success rate (Train)" for other columns."""
    prefix, _, name = metric.rpartition("/")
    pretty = {"SuccessRate": "Success rate", "AverageReturn": "Average return"}.get(name, name)
    for head in (OWN_PREFIX, EVALUATION):
        if f"{prefix}/".startswith(head):
            prefix = f"{prefix}/"[len(head):].rstrip("/")
            break
    if prefix:
        pretty = f"{pretty} ({prefix})"
    return pretty


def _step_scale(max_x: float) -> tuple[float, str]:
    if max_x >= 1e6:
        return 1e6, "Environment steps (millions)"
    if max_x >= 1e4:
        return 1e3, "Environment steps (thousands)"
    return 1.0, "Environment steps"


@dataclass
class Panel:
    env: str
    metric: str  # the requested column (by default the authors' Evaluation/ key)
    curves: dict[str, Curve]  # method -> curve
    #: evaluation metrics: "mixture" or "own policy" (what each method's curve shows) ...
    shows: dict[str, str] = field(default_factory=dict)
    #: ... and the column(s) read for each method
    columns: dict[str, str] = field(default_factory=dict)
    policy: str | None = None  # the --policy choice in effect; None: not an evaluation metric
    #: group name (curves' key) -> its method; a name missing here is the method itself
    methods: dict[str, str] = field(default_factory=dict)

    def method(self, name: str) -> str:
        return self.methods.get(name, name)


def _run_names(runs: Sequence[Run]) -> list[str]:
    """How warnings name runs: "seed S", with the folder when seeds repeat in the group."""
    seeds = [run.seed for run in runs]
    return [f"seed {run.seed}" + (f" ({os.path.basename(os.path.normpath(run.path))})"
                                  if seeds.count(run.seed) > 1 else "") for run in runs]


def _steps_text(x: float) -> str:
    return f"{x:,.0f}"


def length_warning(runs: Sequence[Run], curve: Curve) -> str | None:
    """The text of the warning for seeds of one group that logged different numbers of epochs:
    each length with its seeds, and the seeds averaged over each stretch of the curve."""
    lengths = sorted({run.num_epochs for run in runs})
    if len(lengths) < 2:
        return None
    names = _run_names(runs)
    per_length = "; ".join(
        f"{n} epoch{'s' if n != 1 else ''}: "
        + ", ".join(name for name, run in zip(names, runs, strict=True) if run.num_epochs == n)
        for n in lengths)
    stretches, count = [], int(curve.counts[0])
    for x, after in curve.drops():
        stretches.append(f"{count} seed{'s' if count != 1 else ''} up to step {_steps_text(x)}")
        count = after
    stretches.append(f"{count} seed{'s' if count != 1 else ''} up to step "
                     f"{_steps_text(float(curve.x[-1]))}")
    return (f"seeds cover different lengths ({per_length}); the curve is the mean of "
            f"{', then '.join(stretches)}")


def build_panels(groups: dict[str, dict[str, list[Run]]], metric: str | None,
                 k: int, policy: str | None = None) -> list[Panel]:
    """One panel per env, one curve per group of runs (see group_runs); `policy` ("mixture",
    "own" or None) as --policy, see resolve_metric. Warns (one line per group) when a group's
    seeds cover different lengths or repeat a seed."""
    panels = []
    for env, named in groups.items():
        env_metric = metric or default_metric(env)
        name, choice = resolve_metric(env_metric, policy)
        curves: dict[str, Curve] = {}
        shows: dict[str, str] = {}
        columns: dict[str, str] = {}
        methods: dict[str, str] = {}
        for method in named:  # a group's name, in group_runs' order
            series, reasons = [], []
            used: list[Run] = []
            shown: set[str] = set()
            read: set[str] = set()
            for run in named[method]:
                column, what = ((env_metric, "") if choice is None
                                else evaluation_column(run, name, choice))
                try:
                    series.append(run_series(run, column, k))
                except RunError as error:
                    reasons.append(str(error))
                else:
                    used.append(run)
                    shown.add(what)
                    read.add(column)
            if reasons:  # one line per group, not per seed
                _warn(f"{env} {method}: {len(reasons)} of {len(named[method])} runs left out "
                      f"of the curves ({'; '.join(sorted(set(reasons)))})")
            if series:
                curve = aggregate_curves(series, [run.num_epochs for run in used])
                curves[method] = curve
                methods[method] = group_method(used)
                columns[method] = ", ".join(sorted(read))
                if choice is not None:
                    shows[method] = " / ".join(sorted(shown))
                warning = length_warning(used, curve)
                if warning:
                    _warn(f"{env} {method}: {warning}")
                seeds = [run.seed for run in used]
                repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
                if repeated:
                    _warn(f"{env} {method}: {len(used)} runs but seed "
                          f"{', '.join(repeated)} repeats: averaged as separate seeds")
        if curves:
            panels.append(Panel(env, env_metric, curves, shows, columns, choice, methods))
    return panels


def shown_text(panels: Sequence[Panel]) -> str | None:
    """The line saying what the curves show, e.g. "QMP curves: mixture (Q-switch acting); other
    curves: own policy of each task [Evaluation/SuccessRate]"; None for non-evaluation metrics."""
    parts = []
    for qmp, who in ((True, "QMP curves"), (False, "other curves")):
        shown = sorted({SHOWN_LONG.get(s, s) for p in panels for m, s in p.shows.items()
                        if is_qmp(p.method(m)) == qmp})
        if shown:
            parts.append(f"{who}: {' / '.join(shown)}")
    if not parts:
        return None
    keys = sorted({c for p in panels for m, c in p.columns.items() if m in p.shows})
    return "; ".join(parts) + f" [{', '.join(keys)}]"


def _variant_marker(panel: Panel, name: str) -> str | None:
    """No marker for a method's first group in the panel, VARIANT_MARKERS for the others."""
    same = [n for n in panel.curves if panel.method(n) == panel.method(name)]
    index = same.index(name)
    return None if index == 0 else VARIANT_MARKERS[(index - 1) % len(VARIANT_MARKERS)]


def draw_panel(ax: Axes, panel: Panel, k: int, extra: dict[str, str]) -> None:
    """One line per group with its shaded spread; a `|` where a group's seed count drops."""
    scale, xlabel = _step_scale(max(float(c.x[-1]) for c in panel.curves.values()))
    for name, curve in panel.curves.items():
        label, color, style = method_style(panel.method(name), extra)
        x = curve.x / scale
        marker = _variant_marker(panel, name)
        ax.plot(x, curve.mean, color=color, linestyle=style, linewidth=1.8, label=label,
                marker=marker or ("o" if len(x) == 1 else None), markersize=4,
                markevery=max(1, len(x) // 10))
        ax.fill_between(x, curve.low, curve.high, color=color, alpha=0.18, linewidth=0)
        for at, count in curve.drops():
            y = float(np.interp(at, curve.x, curve.mean))
            ax.plot([at / scale], [y], marker="|", markersize=14, markeredgewidth=2,
                    color=color, linestyle="none")
            ax.annotate(f"{count}", (at / scale, y), xytext=(3, 5), textcoords="offset points",
                        fontsize="x-small", color=color)
    ax.set_title(panel.env)
    ax.set_xlabel(xlabel)
    ylabel = metric_label(panel.metric)
    if k > 1:
        ylabel += f", smoothed over {k}"
    ax.set_ylabel(ylabel)
    if panel.metric.endswith("SuccessRate"):
        ax.set_ylim(-0.03, 1.03)
    ax.grid(True, alpha=0.3)


def curves_figure(panels: Sequence[Panel], k: int) -> Figure:
    ncols = 2 if len(panels) == 4 else min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    width = max(4.6 * ncols, 7.0)
    fig = Figure(figsize=(width, 3.6 * nrows + 1.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    extra: dict[str, str] = {}
    for ax, panel in zip(axes, panels, strict=False):
        draw_panel(ax, panel, k, extra)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    # one legend for all panels, below them: every method once, with its seed count
    entries: dict[str, object] = {}
    seeds: dict[str, set[int]] = {}
    shows: dict[str, str] = {}
    methods: dict[str, str] = {}
    drops = False
    for ax, panel in zip(axes, panels, strict=False):
        handles, _ = ax.get_legend_handles_labels()
        for handle, (name, curve) in zip(handles, panel.curves.items(), strict=True):
            entries.setdefault(name, handle)
            methods.setdefault(name, panel.method(name))
            seeds.setdefault(name, set()).add(curve.num_runs)
            drops = drops or bool(curve.drops())
            if name in panel.shows:
                shows.setdefault(name, panel.shows[name])
    handles, labels = [], []
    for name in sorted(entries, key=lambda n: (_method_order(methods[n]), n)):
        label, _, _ = method_style(methods[name], extra)
        counts = sorted(seeds[name])
        n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        what = shows.get(name)
        handles.append(entries[name])
        labels.append(f"{label} ({name}, {f'{what}, ' if what else ''}"
                      f"{n} seed{'s' if n != '1' else ''})")
    title = "mean over seeds; shaded: std (3+ seeds) or min-max"
    if drops:
        title += "; |N: only N seeds from there on (seeds of different lengths)"
    # two columns when the longest entry fits in half the width (about 4.6 pt a character)
    fits = max(len(label) for label in labels) * 4.6 + 30 <= width * 72 / 2
    fig.legend(handles, labels, loc="outside lower center",
               ncol=2 if len(labels) > 1 and fits else 1,
               fontsize="small", frameon=False, title=title, title_fontsize="small")
    text = shown_text(panels)
    if text:
        fig.suptitle(text, fontsize="small")
    return fig


def mixture_figure(env: str, method: str, stages: np.ndarray, labels: Sequence[str],
                   num_runs: int, name: str | None = None) -> Figure:
    """The mixture heatmaps of one group (`name`, default: the method)."""
    count, n = stages.shape[0], stages.shape[1]
    side = min(max(2.8, 0.42 * n + 1.0), 5.5)
    fig = Figure(figsize=(side * count + 1.2, side + 1.1), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False).ravel()
    image = None
    ticks = np.arange(n) if n <= 20 else np.arange(0, n, 5)
    for ax, matrix, label in zip(axes, stages, labels, strict=True):
        image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("acting policy")
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        if n <= 10:
            for i in range(n):
                for j in range(n):
                    value = matrix[i, j]
                    if np.isfinite(value):
                        ax.text(j, i, f"{value:.2f}", ha="center", va="center",
                                fontsize="small" if n <= 6 else "x-small",
                                color="black" if value > 0.6 else "white")
    axes[0].set_ylabel("task")
    fig.colorbar(image, ax=list(axes), shrink=0.85, label="share of the task's steps")
    label, _, _ = method_style(method, {})
    seeds = f"{num_runs} seed{'s' if num_runs != 1 else ''}"
    fig.suptitle(f"{env} - {name or method} ({label}): Q-switch mixture, mean of {seeds}")
    return fig


# --------------------------------------------------------------------------- command line


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "x"


def save(fig: Figure, out_dir: str, stem: str,
         exts: Sequence[str] = ("png", "pdf")) -> list[str]:
    paths = []
    for ext in exts:
        path = os.path.join(out_dir, f"{stem}.{ext}")
        metadata = {"CreationDate": None} if ext == "pdf" else None
        try:
            fig.savefig(path, dpi=150, metadata=metadata)
        except OSError as error:
            raise PlotError(f"cannot write {path}: {error.strerror or error}") from None
        paths.append(path)
    return paths


def make_plots(runs: Sequence[Run], out_dir: str, metric: str | None = None,
               k: int = 1, policy: str | None = None) -> list[str]:
    """Draws every figure for `runs` into `out_dir`; returns the written paths."""
    groups = group_runs(runs)
    panels = build_panels(groups, metric, k, policy)
    suffix = f"_{_slug(metric)}" if metric else ""
    if policy == "own":
        suffix += "_own-policy"
    mixtures: list[tuple[str, str, str, np.ndarray, list[str], int]] = []
    for env, named in groups.items():
        for name, group in named.items():
            usable = [run for run in group if mixture_columns(run) is not None]
            if not usable:
                continue
            sizes = {mixture_columns(run) for run in usable}
            if len(sizes) > 1:
                _warn(f"{env} {name}: runs with different task counts, no mixture plot")
                continue
            stages, labels = average_mixtures(usable)
            mixtures.append((env, group_method(usable), name, stages, labels, len(usable)))
    if not panels:  # e.g. a misspelt --metric: an error rather than mixture plots only
        wanted = metric or "the default metric"
        raise PlotError(f"nothing to plot: no run has finite values of {wanted}")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise PlotError(f"cannot create {out_dir}: {error.strerror}") from None
    written: list[str] = []
    for panel in panels:
        written += save(curves_figure([panel], k), out_dir, f"curves_{_slug(panel.env)}{suffix}")
    if len(panels) > 1:
        written += save(curves_figure(panels, k), out_dir, f"curves_all-envs{suffix}")
    for env, method, name, stages, labels, num_runs in mixtures:
        fig = mixture_figure(env, method, stages, labels, num_runs, name)
        written += save(fig, out_dir, f"mixture_{_slug(env)}_{_slug(name)}")
    return written


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Learning curves and QMP mixture matrices of run folders.",
        epilog="Curves average the seeds of one group: runs of the same env and method whose "
               "config.yaml agrees on every setting that can change results. Not compared: "
               f"{', '.join(NOT_RESULT_KEYS)}, and keys unknown to plot.py (provenance such as "
               "git commit, host, versions). n_epochs is not compared because a run computes the "
               "same up to an epoch whatever its length; seeds of one group with different "
               "lengths get a warning and the curve runs to the longest seed's end, each point "
               "averaging the seeds that reach it (| marks where the count drops). Groups of one "
               "env and method are named by the settings that differ, e.g. "
               "'qmp_dnc, layer_norm=True'.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run folders, or folders searched recursively for them")
    parser.add_argument("--out", default="plots", help="output folder (default: ./plots)")
    parser.add_argument("--metric", default=None,
                        help="progress.csv column to plot (default: Evaluation/SuccessRate, "
                             "Evaluation/AverageReturn for Walker envs). An Evaluation/NAME key "
                             "is read as --policy says (QMP runs with --policy own: "
                             "Evaluation/p/NAME); Evaluation/p/NAME means NAME of the own "
                             "policy, as --policy own; any other column (Train/...) is read as "
                             "given, and --policy does not apply to it")
    parser.add_argument("--policy", choices=POLICIES, default=None,
                        help="which evaluation of QMP methods to plot: mixture (default; the "
                             "authors' Evaluation/ keys: the Q-switch acting) or own (each "
                             "task's own policy, Evaluation/p/). Other methods evaluate only "
                             "their own policy, under Evaluation/, for either choice")
    parser.add_argument("--smooth", type=_positive_int, default=1, metavar="K",
                        help="trailing moving average over K logged points (default 1: none)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        resolve_metric(args.metric or DEFAULT_METRIC, args.policy)  # bad combinations first
        runs = load_runs(args.run_dirs)
        if not runs:
            raise PlotError(f"no usable run folder (progress.csv + config.yaml) under "
                            f"{' '.join(args.run_dirs)}")
        written = make_plots(runs, args.out, args.metric, args.smooth, args.policy)
    except PlotError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
