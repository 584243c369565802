"""Command-line flags, their resolution into one experiment config, and the run folder.

Precedence: the original's global defaults (spec 5.1) < the environment's config file
`configs/ENV.yaml` (the paper's defaults, spec 5.2, then its per-method overrides) < a user's
`--config FILE` < flags given on the command line. Every user mistake raises `ExperimentError`,
which run.py prints as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import yaml

import environments
from learning.sampler import SAMPLER_TYPES
from learning.task_networks import Architecture


class ExperimentError(Exception):
    """A problem with the user's request, reported as a one-line error (exit code 2)."""


CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


@dataclass(frozen=True)
class MethodSpec:
    """What distinguishes the paper's methods: how data trains the networks, whether the
    Q-switch collects the data, and how temperatures are kept."""

    sampling: Literal["per_task", "mixed", "sharing"]
    qmp: bool
    per_task_temperature: bool
    temperature_loss: Literal["log_alpha", "alpha"]

    @property
    def family(self) -> str:
        return {"per_task": "Separated", "mixed": "Parameters", "sharing": "Data"}[self.sampling]


METHODS: dict[str, MethodSpec] = {
    "sac": MethodSpec("mixed", qmp=False, per_task_temperature=False, temperature_loss="alpha"),
    "mtsac": MethodSpec("mixed", qmp=False, per_task_temperature=True, temperature_loss="alpha"),
    "qmp_sac": MethodSpec("mixed", qmp=True, per_task_temperature=True, temperature_loss="alpha"),
    "dnc_sac": MethodSpec("per_task", qmp=False, per_task_temperature=True,
                          temperature_loss="log_alpha"),
    "qmp_dnc": MethodSpec("per_task", qmp=True, per_task_temperature=True,
                          temperature_loss="log_alpha"),
    "uds_dnc": MethodSpec("sharing", qmp=False, per_task_temperature=True,
                          temperature_loss="log_alpha"),
    "qmp_uds_dnc": MethodSpec("sharing", qmp=True, per_task_temperature=True,
                              temperature_loss="log_alpha"),
}

#: the original's run.py defaults (spec 5.1); None = decided by method or env
GLOBAL_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_epochs": 1000,
    "batch_size": 1000,
    "gradient_steps_per_itr": 1000,
    "min_buffer_size": 10000,
    "buffer_batch_size": 32,
    "steps_per_epoch": 1,
    "lr": 3e-4,
    "hidden_sizes": [256, 256],
    "discount": 0.99,
    "target_update_tau": 5e-3,
    "reward_scale": 1.0,
    "target_entropy": None,
    "num_evaluation_episodes": 10,
    "evaluation_frequency": 1,
    "policy_architecture": None,
    "Q_architecture": None,
    "include_task_id": False,
    "policy_sampling_freq": 1,
    "sharing_quantile": 0.0,
    "layer_norm": False,
    "vis_freq": -1,
    "kl_coeff": [0.0],
    "qswitch_critic": "q1",
    "replay_buffer_size": None,
    "sampler_type": "local",
    "torch_threads": 1,
    "sparse_tasks": [],
    "eval_in_background": True,
    "envs_per_task": 1,
    "snapshot_gap": 1,
    "snapshot_interval": 60.0,
    "keep_checkpoints": 1,
    "wandb": False,
    "log_dir": None,
}


@dataclass(frozen=True)
class ExperimentConfig:
    method: str
    env: str
    seed: int
    n_epochs: int
    batch_size: int
    gradient_steps_per_itr: int
    min_buffer_size: int
    buffer_batch_size: int
    steps_per_epoch: int
    lr: float
    hidden_sizes: list[int]
    discount: float
    target_update_tau: float
    reward_scale: float
    target_entropy: float | None
    num_evaluation_episodes: int
    evaluation_frequency: int
    policy_architecture: str
    Q_architecture: str
    include_task_id: bool
    policy_sampling_freq: int
    sharing_quantile: float
    layer_norm: bool
    vis_freq: int
    kl_coeff: list[float]
    qswitch_critic: str
    #: None until the run is built: then the default sized to the run and the machine
    replay_buffer_size: int | None
    torch_threads: int | None
    sparse_tasks: list[int]
    eval_in_background: bool
    snapshot_gap: int
    keep_checkpoints: int
    wandb: bool
    log_dir: str | None
    #: defaulted so that run folders written before the flag existed still resume (they used 1)
    envs_per_task: int = 1
    snapshot_interval: float = 0.0
    sampler_type: str = "local"
    num_tasks: int = field(default=0)

    @property
    def spec(self) -> MethodSpec:
        return METHODS[self.method]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line instead of usage + traceback-free exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ExperimentError(message)


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="run.py",
        description="Train a multi-task RL method (QMP and its baselines) on a multi-task env.",
    )
    p.add_argument("method", choices=list(METHODS), metavar="METHOD",
                   help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--env", default="PointReachMT4-v0",
                   help=f"environment id, one of: {', '.join(environments.known_env_ids())}")
    a = p.add_argument
    a("--seed", type=int, help="seed of python, numpy, torch and the envs (default 0)")
    a("--n_epochs", type=int, help="training epochs")
    a("--batch_size", type=int, help="env steps per collection round, over all tasks")
    a("--gradient_steps_per_itr", type=int,
      help="gradient steps per round (split over tasks for Separated/Data methods)")
    a("--min_buffer_size", type=int,
      help="transitions to collect before training (per task for Separated/Data methods)")
    a("--buffer_batch_size", type=int,
      help="batch size per update (per task for Separated/Data methods)")
    a("--steps_per_epoch", type=int, help="collect+train rounds per epoch")
    a("--lr", type=float, help="learning rate of actor, critics and temperature")
    a("--hidden_sizes", type=int, nargs="+", help="hidden layer sizes, e.g. 256 256")
    a("--discount", type=float, help="discount factor gamma")
    a("--target_update_tau", type=float, help="Polyak rate of the target critics")
    a("--reward_scale", type=float, help="reward multiplier in the critic target")
    a("--target_entropy", type=float, help="SAC target entropy (default -|A|; 0 = default)")
    a("--num_evaluation_episodes", type=int, help="evaluation episodes in total (split over tasks)")
    a("--evaluation_frequency", type=int, help="evaluate every this many epochs")
    a("--policy_architecture", choices=[x.value for x in Architecture],
      help="separate (Separated/Data methods) or multihead/shared (sac, mtsac, qmp_sac)")
    a("--Q_architecture", choices=[x.value for x in Architecture], help="as --policy_architecture")
    a("--include_task_id", type=_bool, help="keep the task one-hot in the network input")
    a("--policy_sampling_freq", type=int, help="Q-switch re-selects every this many steps")
    a("--sharing_quantile", type=float,
      help="UDS: share other tasks' data only where Q exceeds this quantile (0 = share all)")
    a("--layer_norm", type=_bool, help="LayerNorm in the critics")
    a("--vis_freq", type=int,
      help="mp4 of one evaluation episode per task every this many epochs (-1 = none, the "
           "default: CPU rendering is slow; the original used 10)")
    a("--kl_coeff", type=float, nargs="+",
      help="DnC KL regularisation: one beta, or N*N values row-major (row i: policy i)")
    a("--qswitch_critic", choices=["q1", "min"],
      help="Q-switch scores with Q1 (the original) or min(Q1, Q2)")
    a("--replay_buffer_size", type=int,
      help="capacity of each task's buffer (Separated/Data methods) or of the one shared "
           "buffer (Parameters methods); default 1e6, lowered to the run's total env steps "
           "and to what fits in 40%% of this machine's memory (a printed line says so)")
    a("--sampler_type", choices=list(SAMPLER_TYPES),
      help="how a round's env steps go to the tasks, as the original's samplers: local "
           "(default: one whole episode per task in task order, cycling from task 0, until the "
           "round has --batch_size steps) or mt_local (each task whole episodes until it has "
           "--batch_size / N steps)")
    a("--torch_threads", type=int,
      help="torch intra-op threads (default 1: fastest for these small networks)")
    a("--sparse_tasks", type=int, nargs="+",
      help="task ids that get the sparse reward (envs that offer it: Maze, Kitchen)")
    a("--eval_in_background", type=_bool,
      help="evaluate in a worker process, overlapping the next epoch's training (default True;"
           " same numbers either way)")
    a("--envs_per_task", type=int,
      help="env copies per task stepped in lockstep while collecting (default 1, as the "
           "original's sampler; K > 1 serves K steps of every task with one policy call, like "
           "garage's FragmentWorker with 8, and splits each round's steps over the copies)")
    a("--snapshot_gap", type=int, help="checkpoint every this many epochs (default 1)")
    a("--snapshot_interval", type=float,
      help="seconds that must pass between checkpoints (default 60; 0 = every --snapshot_gap "
           "epochs); the last epoch is always checkpointed")
    a("--keep_checkpoints", type=int, help="how many checkpoints to keep (default 1, the last)")
    a("--wandb", type=_bool, help="also log to Weights & Biases (needs `pip install wandb`; "
      "offline unless WANDB_MODE=online)")
    a("--config", help="YAML file of flag values (keys as the flags, without --); flags given "
      "on the command line win")
    a("--log_dir", help="run folder (default: a fresh timestamped folder under data/)")
    return p


def resolve_config(argv: list[str] | None = None) -> ExperimentConfig:
    """Parse flags and apply the defaults; raises ExperimentError on bad input."""
    args = vars(build_parser().parse_args(argv))
    env_id = args["env"]
    if env_id not in environments.known_env_ids():
        raise ExperimentError(
            f"unknown env {env_id!r}; choose one of: {', '.join(environments.known_env_ids())}"
        )
    family = environments.env_class(env_id)
    values: dict[str, Any] = dict(GLOBAL_DEFAULTS)
    env_defaults, method_overrides = env_config(env_id)
    values.update(env_defaults)
    values.update(method_overrides.get(args["method"], {}))
    config_file = args.pop("config")
    if config_file is not None:
        values.update(read_config_file(config_file))
    values.update({k: v for k, v in args.items() if v is not None})
    if values["target_entropy"] == 0:
        values["target_entropy"] = None
    num_tasks = len(family.task_names)
    spec = METHODS[values["method"]]
    default_arch = "separate" if spec.sampling != "mixed" else "multihead"
    values["policy_architecture"] = values["policy_architecture"] or default_arch
    values["Q_architecture"] = values["Q_architecture"] or default_arch
    values["num_tasks"] = num_tasks
    config = ExperimentConfig(**values)
    validate(config)
    return config


#: what each configurable key holds (for config files; the command line has argparse types)
_KEY_TYPES: dict[str, str] = {
    "seed": "int", "n_epochs": "int", "batch_size": "int", "gradient_steps_per_itr": "int",
    "min_buffer_size": "int", "buffer_batch_size": "int", "steps_per_epoch": "int",
    "lr": "float", "hidden_sizes": "list[int]", "discount": "float",
    "target_update_tau": "float", "reward_scale": "float", "target_entropy": "float?",
    "num_evaluation_episodes": "int", "evaluation_frequency": "int",
    "policy_architecture": "str?", "Q_architecture": "str?", "include_task_id": "bool",
    "policy_sampling_freq": "int", "sharing_quantile": "float", "layer_norm": "bool",
    "vis_freq": "int", "kl_coeff": "list[float]", "qswitch_critic": "str",
    "replay_buffer_size": "int?", "sampler_type": "str", "torch_threads": "int?",
    "sparse_tasks": "list[int]",
    "eval_in_background": "bool", "envs_per_task": "int",
    "snapshot_interval": "float", "log_dir": "str?", "snapshot_gap": "int",
    "keep_checkpoints": "int", "wandb": "bool",
}


def _check_value(key: str, value: Any, where: str) -> Any:
    """The value if it has the key's type (ints are accepted as floats), else ExperimentError."""
    kind = _KEY_TYPES.get(key)
    if kind is None:
        raise ExperimentError(f"{where}: unknown key {key!r}")
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]

    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    ok = {
        "int": is_int(value),
        "float": is_int(value) or isinstance(value, float),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "list[int]": isinstance(value, list) and all(is_int(x) for x in value),
        "list[float]": isinstance(value, list)
        and all(is_int(x) or isinstance(x, float) for x in value),
    }[kind]
    if not ok:
        raise ExperimentError(f"{where}: {key} must be {kind}, got {value!r}")
    if kind == "float":
        return float(value)
    if kind == "list[float]":
        return [float(x) for x in value]
    return value


def _read_yaml(path: str) -> Any:
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError as error:
        raise ExperimentError(f"cannot read config {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ExperimentError(f"config {path} is not valid YAML") from error


def read_config_file(path: str) -> dict[str, Any]:
    """A user's --config FILE: a flat mapping of flag names to values, checked."""
    data = _read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ExperimentError(f"config {path} must map flag names to values")
    if "method" in data or "env" in data:
        raise ExperimentError(f"config {path}: give the method and --env on the command line")
    return {key: _check_value(key, value, f"config {path}") for key, value in data.items()}


def env_config(env_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The env's defaults and per-method overrides from configs/ENV.yaml (checked)."""
    path = os.path.join(CONFIG_DIR, f"{env_id}.yaml")
    if not os.path.exists(path):
        return {}, {}
    data = _read_yaml(path) or {}
    unknown = set(data) - {"defaults", "methods"}
    if unknown:
        raise ExperimentError(f"config {path}: unknown sections {sorted(unknown)}")
    defaults = {k: _check_value(k, v, f"config {path}")
                for k, v in (data.get("defaults") or {}).items()}
    methods = {}
    for method, overrides in (data.get("methods") or {}).items():
        if method not in METHODS:
            raise ExperimentError(f"config {path}: unknown method {method!r}")
        methods[method] = {k: _check_value(k, v, f"config {path}")
                           for k, v in (overrides or {}).items()}
    return defaults, methods


def validate(c: ExperimentConfig) -> None:
    """Reject impossible or unsupported combinations before anything is built."""
    n = c.num_tasks
    spec = c.spec
    positive = ("n_epochs", "batch_size", "gradient_steps_per_itr", "buffer_batch_size",
                "steps_per_epoch", "evaluation_frequency", "policy_sampling_freq",
                "replay_buffer_size", "snapshot_gap", "keep_checkpoints", "envs_per_task")
    for name in positive:
        if getattr(c, name) is not None and getattr(c, name) < 1:
            raise ExperimentError(f"--{name} must be positive, got {getattr(c, name)}")
    if c.min_buffer_size < 0:
        raise ExperimentError(f"--min_buffer_size must be >= 0, got {c.min_buffer_size}")
    if c.snapshot_interval < 0:
        raise ExperimentError(f"--snapshot_interval must be >= 0, got {c.snapshot_interval}")
    if c.lr <= 0:
        raise ExperimentError(f"--lr must be positive, got {c.lr}")
    if not c.hidden_sizes or min(c.hidden_sizes) < 1:
        raise ExperimentError("--hidden_sizes must be positive integers")
    if not 0.0 <= c.discount <= 1.0:
        raise ExperimentError(f"--discount must be in [0, 1], got {c.discount}")
    if not 0.0 < c.target_update_tau <= 1.0:
        raise ExperimentError(f"--target_update_tau must be in (0, 1], got {c.target_update_tau}")
    if not 0.0 <= c.sharing_quantile < 1.0:
        raise ExperimentError(f"--sharing_quantile must be in [0, 1), got {c.sharing_quantile}")
    if c.batch_size < n:
        raise ExperimentError(f"--batch_size {c.batch_size} is smaller than the {n} tasks")
    if c.num_evaluation_episodes < n:
        raise ExperimentError(
            f"--num_evaluation_episodes {c.num_evaluation_episodes} gives no episode per task "
            f"({n} tasks)"
        )
    if c.replay_buffer_size is not None and c.replay_buffer_size < c.min_buffer_size:
        raise ExperimentError(
            f"--replay_buffer_size {c.replay_buffer_size} cannot hold --min_buffer_size"
        )
    if c.sampler_type not in SAMPLER_TYPES:
        raise ExperimentError(f"--sampler_type must be one of {', '.join(SAMPLER_TYPES)}, "
                              f"got {c.sampler_type!r}")
    _validate_architectures(c)
    if len(c.kl_coeff) not in (1, n * n):
        raise ExperimentError(f"--kl_coeff takes 1 or {n * n} values, got {len(c.kl_coeff)}")
    if any(v != 0 for v in c.kl_coeff) and c.method not in ("dnc_sac", "qmp_dnc"):
        raise ExperimentError("--kl_coeff is only supported by dnc_sac and qmp_dnc")
    if spec.sampling == "sharing" and n < 2:
        raise ExperimentError(f"{c.method} shares data between tasks and needs >= 2 tasks")
    if c.torch_threads is not None and c.torch_threads < 1:
        raise ExperimentError("--torch_threads must be positive")
    if c.wandb and importlib.util.find_spec("wandb") is None:
        raise ExperimentError("--wandb True needs the wandb package: pip install wandb")
    if c.sparse_tasks:
        if "sparse_tasks" not in environments.env_class(c.env).task_options:
            raise ExperimentError(f"--sparse_tasks is not an option of {c.env}")
        bad = [k for k in c.sparse_tasks if not 0 <= k < n]
        if bad:
            raise ExperimentError(f"--sparse_tasks {bad}: task ids are 0..{n - 1}")


def _validate_architectures(c: ExperimentConfig) -> None:
    spec, archs = c.spec, (c.policy_architecture, c.Q_architecture)
    if spec.sampling != "mixed":
        if archs != ("separate", "separate"):
            raise ExperimentError(f"{c.method} uses separate per-task networks; "
                                  "--policy_architecture and --Q_architecture must be separate")
    elif "separate" in archs:
        raise ExperimentError(f"{c.method} shares parameters: use multihead or shared "
                              "architectures (separate networks are dnc_sac)")
    if c.method == "qmp_sac" and archs != ("multihead", "multihead"):
        raise ExperimentError("qmp_sac needs --policy_architecture multihead "
                              "--Q_architecture multihead")
    if spec.qmp and c.include_task_id:
        raise ExperimentError(f"{c.method} does not take --include_task_id True "
                              "(the Q-switch runs every policy on every task's observation)")
    if "shared" in archs and c.num_tasks > 1 and not c.include_task_id:
        raise ExperimentError("the shared architecture needs --include_task_id True "
                              "with more than one task")


def env_options(c: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments of the env family that come from flags."""
    return {"sparse_tasks": tuple(c.sparse_tasks)} if c.sparse_tasks else {}


def save_run_config(run_dir: str, config: ExperimentConfig) -> None:
    """Write the resolved config as the run folder's `config.yaml` (read by load_run_config)."""
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)


def load_run_config(run_dir: str) -> ExperimentConfig:
    """The resolved config a run folder was started with (checked like a new one)."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isdir(run_dir):
        raise ExperimentError(f"--snapshot_dir {run_dir} is not a folder")
    if not os.path.exists(path):
        raise ExperimentError(f"{run_dir} is not a run folder (no config.yaml)")
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ExperimentError(f"{path} is not a run config")
    try:
        config = ExperimentConfig(**data)
    except TypeError as error:
        raise ExperimentError(f"{path} is not a run config of this version") from error
    validate(config)
    return config


#: the default replay capacity (the original's, per buffer)
DEFAULT_REPLAY_CAPACITY = 1_000_000
#: default buffers take at most this share of the machine's memory (a checkpoint copies them)
DEFAULT_MEMORY_SHARE = 0.4
#: explicit --replay_buffer_size values are refused above this share
MAX_MEMORY_SHARE = 0.8


def _machine_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def max_env_steps(c: ExperimentConfig, horizon: int) -> int:
    """An upper bound on the env steps of the whole run: every round's steps plus the warm-up,
    each round overshooting by up to one episode per task (whole episodes)."""
    rounds = c.n_epochs * c.steps_per_epoch
    warm_up = c.min_buffer_size * (1 if c.spec.sampling == "mixed" else c.num_tasks)
    return rounds * (c.batch_size + c.num_tasks * horizon) + warm_up + c.num_tasks * horizon


def size_replay_buffers(c: ExperimentConfig, obs_dim: int, action_dim: int, horizon: int
                        ) -> tuple[ExperimentConfig, str | None]:
    """The config with its replay capacity decided, and a line to print when the default was
    lowered. Default: 1e6 per buffer (one per task, or one shared by the Parameters methods),
    at most the run's total env steps (with the original's sampler a task's share is not known
    in advance), and at most what fits in DEFAULT_MEMORY_SHARE of this machine's memory. An
    explicit value is kept, or refused if it could not fit in MAX_MEMORY_SHARE."""
    from learning.replay_buffer import MultiTaskReplayBuffer

    groups = 1 if c.spec.sampling == "mixed" else c.num_tasks
    memory = _machine_memory()
    if c.replay_buffer_size is not None:
        need = MultiTaskReplayBuffer.bytes_needed(groups, c.replay_buffer_size, obs_dim,
                                                  action_dim)
        if memory is not None and need > MAX_MEMORY_SHARE * memory:
            raise ExperimentError(
                f"replay buffers would need {need / 2**30:.1f} GiB when full "
                f"({groups} x {c.replay_buffer_size} transitions) but this machine has "
                f"{memory / 2**30:.1f} GiB; lower --replay_buffer_size"
            )
        return c, None
    capacity = min(DEFAULT_REPLAY_CAPACITY, max_env_steps(c, horizon))
    note = None
    if memory is not None:
        per_buffer = MultiTaskReplayBuffer.bytes_needed(1, 1, obs_dim, action_dim) * groups
        fits = int(DEFAULT_MEMORY_SHARE * memory // per_buffer)
        if fits < capacity:
            if fits < max(c.min_buffer_size, 1):
                raise ExperimentError(
                    f"replay buffers of --min_buffer_size {c.min_buffer_size} transitions "
                    f"({groups} buffers) do not fit in this machine's "
                    f"{memory / 2**30:.1f} GiB")
            capacity = fits
            note = (f"replay buffers: {groups} x {capacity:,} transitions (the default 1e6 "
                    f"lowered to fit {DEFAULT_MEMORY_SHARE:.0%} of this machine's "
                    f"{memory / 2**30:.1f} GiB; --replay_buffer_size sets it)")
    return replace(c, replay_buffer_size=capacity), note


def make_log_dir(c: ExperimentConfig) -> str:
    """The run folder: the user's --log_dir if new or empty, else a fresh timestamped folder."""
    if c.log_dir is not None:
        if os.path.exists(c.log_dir) and (not os.path.isdir(c.log_dir) or os.listdir(c.log_dir)):
            raise ExperimentError(f"--log_dir {c.log_dir} exists and is not empty; "
                                  "refusing to overwrite it")
        os.makedirs(c.log_dir, exist_ok=True)
        return c.log_dir
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("data", f"{c.method}_{c.env}_s{c.seed}_{stamp}")
    path, k = base, 1
    while os.path.exists(path):
        path, k = f"{base}_{k}", k + 1
    os.makedirs(path)
    return path


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
