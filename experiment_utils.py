"""Command-line flags, their resolution into one experiment config, and the run folder.

Precedence: the original's global defaults (its run.py's) < the environment's config file
`configs/ENV.yaml` (the paper's per-env defaults, then its per-method overrides) < a user's
`--config FILE` < flags given on the command line. Every user mistake raises `ExperimentError`,
which run.py prints as one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import importlib.util
import os
import random
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
import yaml

import environments
from learning.algorithms.sac import UPDATE_PATHS, Extensions
from learning.nn.heads import Architecture
from learning.policies.behaviour import Behaviour, OwnPolicy
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.decaf_critic import DecafCritic
from learning.q_functions.twin_critic import TwinCritic
from learning.samplers.sampler import SAMPLER_TYPES


class ExperimentError(Exception):
    """A problem with the user's request, reported as a one-line error (exit code 2)."""


CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


@dataclass(frozen=True)
class MethodSpec:
    """A method is one combination of parts: how data trains the networks (batch sampling),
    whether the Q-switch collects the data, how temperatures are kept, and what it adds to the
    SAC update (extra loss terms, a gradient transform: `learning.algorithms.sac.Extensions`,
    built from the run's config and networks)."""

    sampling: Literal["per_task", "mixed", "sharing"]
    qmp: bool
    per_task_temperature: bool
    temperature_loss: Literal["log_alpha", "alpha"]
    extensions: Callable[[ExperimentConfig, TaskPolicy, TwinCritic], Extensions | None] | None = (
        None)
    #: the Q-functions: twin critics of the chosen architecture, or DECAF's mixtures of them
    critic: Literal["twin", "decaf"] = "twin"
    #: the architectures (policy, Q) the method is defined with; None: the family's
    architectures: tuple[str, str] | None = None
    #: what the actor trains on: the critics' batch ("own"), or MCAL's batches from all tasks
    actor_batches: Literal["own", "all_tasks"] = "own"

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
    "decaf": MethodSpec("per_task", qmp=False, per_task_temperature=True,
                        temperature_loss="log_alpha", critic="decaf"),
    "mcal": MethodSpec("per_task", qmp=False, per_task_temperature=False,
                       temperature_loss="log_alpha", architectures=("multihead", "separate"),
                       actor_batches="all_tasks"),
    "qmp_mcal": MethodSpec("per_task", qmp=True, per_task_temperature=False,
                           temperature_loss="log_alpha", architectures=("multihead", "separate"),
                           actor_batches="all_tasks"),
}

#: the paper's name of each method and what it is (shown by `python run.py` alone and --help)
METHOD_SUMMARIES: dict[str, str] = {
    "dnc_sac": "Separated: one SAC policy and twin critics per task, no sharing",
    "qmp_dnc": "Separated + QMP: the same, data collected with the Q-switch",
    "mtsac": "Parameters: multi-head SAC, one trunk with a head and a temperature per task",
    "qmp_sac": "Parameters + QMP: the same, the policy heads are the Q-switch candidates",
    "uds_dnc": "Data (UDS): per-task networks, other tasks' data shared where Q is high",
    "qmp_uds_dnc": "Data + QMP: the same, data collected with the Q-switch",
    "sac": "single-network SAC on all tasks, one temperature",
    "decaf": "DECAF: Separated, each task's critic a learned mixture of every task's critic",
    "mcal": "MCAL: one multi-head policy trained on all tasks, each scored by its own critics",
    "qmp_mcal": "MCAL + QMP: the same, the policy heads are the Q-switch candidates",
}

#: MODULE:NAME methods imported so far -> NAME
MODULE_METHODS: dict[str, str] = {}


def register_method(name: str, spec: MethodSpec, summary: str) -> None:
    """Add a method under `name` (a user's own, from their module: `run.py MODULE:NAME` imports
    MODULE, whose import calls this)."""
    if name in METHODS:
        raise ValueError(f"a method named {name!r} exists already")
    METHODS[name] = spec
    METHOD_SUMMARIES[name] = summary


def method_spec(method: str) -> MethodSpec:
    """The parts of `method`: a built-in name, or MODULE:NAME for a method MODULE registers on
    import (imported here if needed, e.g. in a resumed run or the evaluation worker)."""
    if method not in METHODS and method not in MODULE_METHODS and ":" in method:
        try:
            name = environments.import_prefix(method, "method")
        except ValueError as error:
            raise ExperimentError(str(error)) from None
        if name not in METHODS:
            raise ExperimentError(f"{method.partition(':')[0]} registers no method {name!r} "
                                  "(experiment_utils.register_method)")
        MODULE_METHODS[method] = name
    name = MODULE_METHODS.get(method, method)
    if name not in METHODS:
        raise ExperimentError(f"unknown method {method!r}")
    return METHODS[name]



#: the env trained when --env is not given (a line says so)
DEFAULT_ENV = "PointReachMT4-v0"
#: seeds python, numpy, torch and the envs all accept
SEED_LIMIT = 2**32

#: the original's run.py defaults; None = decided by method or env
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
    "update_path": "auto",
    "use_pc_grad": False,
    "skip_alpha_pc_grad": True,
    "grad_clip": None,
    "regularize_representation": False,
    "distillation_period": 0,
    "distillation_n_epochs": 100,
    "unsupervised": True,
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
    update_path: str = "auto"
    use_pc_grad: bool = False
    skip_alpha_pc_grad: bool = True
    grad_clip: float | None = None
    regularize_representation: bool = False
    distillation_period: int = 0
    distillation_n_epochs: int = 100
    #: False: CDS, uds_dnc's shared data relabelled with the learner task's own reward
    unsupervised: bool = True
    num_tasks: int = field(default=0)

    @property
    def spec(self) -> MethodSpec:
        return method_spec(self.method)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (ExperimentError) instead of usage + exit,
    never takes an abbreviation of a flag, and writes the --help epilog only when asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--n_epoch 2` is an error, not --n_epochs
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            message += _did_you_mean(self, message.split(":", 1)[1].split())
        raise ExperimentError(message)

    def format_help(self) -> str:
        if self.epilog is None:
            self.epilog = help_epilog()  # reads configs/ENV.yaml: only at help time
        return super().format_help()


def _did_you_mean(parser: argparse.ArgumentParser, tokens: list[str]) -> str:
    """' (flags are never abbreviated: did you mean --x?)' for the first unknown --flag."""
    known = [o for action in parser._actions for o in action.option_strings]
    for token in tokens:
        if token.startswith("--"):
            close = difflib.get_close_matches(token.split("=", 1)[0], known, n=1)
            if close:
                return f" (flags are never abbreviated: did you mean {close[0]}?)"
    return ""


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


#: the boolean flags: `--flag` alone means True, `--flag True` / `--flag False` as the original
BOOL_FLAGS = ("include_task_id", "layer_norm", "eval_in_background", "wandb", "use_pc_grad",
              "skip_alpha_pc_grad", "regularize_representation", "unsupervised")


def _bare_booleans(argv: Sequence[str]) -> list[str]:
    """argv with `--flag` written `--flag=True` where a boolean flag is directly followed by
    METHOD, so that a bare boolean never takes the method as its value."""
    out = list(argv)
    flags = {f"--{name}" for name in BOOL_FLAGS}
    for i, token in enumerate(out[:-1]):
        if token == "--":
            break
        if token in flags and (out[i + 1] in METHODS or out[i + 1] in MODULE_METHODS):
            out[i] = f"{token}=True"
    return out


def _user_method(argv: Sequence[str]) -> None:
    """Make a MODULE:NAME method given as the first argument known (importing MODULE), so the
    parser accepts it."""
    if argv and ":" in argv[0] and not argv[0].startswith("-"):
        method_spec(argv[0])


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="run.py",
        description="Train a multi-task RL method (QMP and its baselines) on a multi-task env.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("method", choices=[*METHODS, *MODULE_METHODS], metavar="METHOD",
                   help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--env",
                   help=f"environment id (default {DEFAULT_ENV}, with a line saying so), one of: "
                        f"{', '.join(environments.known_env_ids())}; or a multi-task family "
                        "registered with gymnasium (MODULE:ID imports MODULE first)")
    a = p.add_argument

    def boolean(name: str, help: str) -> None:
        assert name in BOOL_FLAGS, name
        a(f"--{name}", type=_bool, nargs="?", const=True, metavar="BOOL",
          help=f"{help}; a bare --{name} means True")
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
    boolean("include_task_id", "keep the task one-hot in the network input (default False)")
    a("--policy_sampling_freq", type=int, help="Q-switch re-selects every this many steps")
    a("--sharing_quantile", type=float,
      help="UDS: share other tasks' data only where Q exceeds this quantile (0 = share all)")
    boolean("unsupervised", "uds_dnc relabels shared data with the env's min_reward (default "
            "True, UDS); False (CDS) with the learning task's own reward of each transition, for "
            "envs that can compute it (PointReachMT4-v0, MazeLarge-10-v0)")
    boolean("layer_norm", "LayerNorm in the critics (default False)")
    boolean("use_pc_grad", "PCGrad gradient surgery between the tasks' gradients of the shared "
            "networks (Parameters methods: sac, mtsac, qmp_sac; default False)")
    a("--grad_clip", type=float,
      help="clip the gradient norm of each optimizer (each task's network, each critic, each "
           "temperature) to this before its step; default off. The original accepted the flag "
           "but never applied it")
    boolean("skip_alpha_pc_grad", "with --use_pc_grad, leave the temperatures out of PCGrad "
            "(default True, as the original)")
    a("--vis_freq", type=int,
      help="mp4 of one evaluation episode per task every this many epochs (positive), or -1 = "
           "none, the default: CPU rendering is slow; the original used 10")
    a("--kl_coeff", type=float, nargs="+",
      help="DnC KL regularisation: one beta, or N*N values row-major (row i: policy i)")
    a("--distillation_period", type=int,
      help="DnC's distillation (dnc_sac, qmp_dnc): every this many epochs a central policy is "
           "fitted to every task's stored actions and copied into all task policies; a multiple "
           "of --evaluation_frequency; 0 (default) is off")
    a("--distillation_n_epochs", type=int,
      help="gradient steps of each distillation (default 100)")
    boolean("regularize_representation",
            "DnC's penalty on the policies' last hidden layers (mean squared difference) instead "
            "of their KL, weighted by --kl_coeff (default False)")
    a("--qswitch_critic", choices=["q1", "min"],
      help="Q-switch scores with Q1 (the original) or min(Q1, Q2)")
    a("--replay_buffer_size", type=int,
      help="capacity of each task's buffer (Separated/Data methods) or of the one shared "
           "buffer (Parameters methods); default 1e6 (the original's), lowered only to what "
           "fits in 40%% of this machine's memory (a printed line says so)")
    a("--sampler_type", choices=list(SAMPLER_TYPES),
      help="how a round's env steps go to the tasks, as the original's samplers: local "
           "(default: one whole episode per task in task order, cycling from task 0, until the "
           "round has --batch_size steps) or mt_local (each task whole episodes until it has "
           "--batch_size / N steps)")
    a("--torch_threads", type=int,
      help="torch intra-op threads (default 1, safe when several runs share the machine; a "
           "run alone on a machine is fastest with 2 or more, see docs/performance.md)")
    a("--update_path", choices=list(UPDATE_PATHS),
      help="how the SAC update computes its gradients: hand (hand-written backward passes, "
           "faster), autograd (autograd on the losses as written) or auto (default: hand "
           "whenever it covers the update); both give the same gradients")
    a("--sparse_tasks", type=int, nargs="+",
      help="task ids that get the sparse reward (envs that offer it: Maze, Kitchen)")
    boolean("eval_in_background",
            "evaluate in a worker process, overlapping the next epoch's training (default True;"
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
    boolean("wandb", "also log to Weights & Biases (default False; needs `pip install wandb`;"
            " offline unless WANDB_MODE=online)")
    a("--config", help="YAML file of flag values (keys as the flags, without --); flags given "
      "on the command line win")
    a("--log_dir", help="run folder (default: a fresh timestamped folder under data/)")
    return p


USAGE = ("usage: python run.py METHOD [--env=ID] [flags]   (python run.py --help: every flag)\n"
         "       python run.py resume --snapshot_dir RUN_DIR [--n_epochs N [--shorten]] "
         "[--torch_threads T]")

#: the main per-env defaults listed by --help
HELP_DEFAULT_KEYS = ("n_epochs", "batch_size", "gradient_steps_per_itr", "buffer_batch_size",
                     "min_buffer_size", "lr")


def _methods_and_envs() -> list[str]:
    width = max(map(len, METHODS))
    lines = ["METHOD, one of:"]
    lines += [f"  {name:<{width}}  {METHOD_SUMMARIES[name]}" for name in METHODS]
    lines += textwrap.wrap(f"--env=ID (default {DEFAULT_ENV}), one of: "
                           f"{', '.join(environments.known_env_ids())}",
                           width=100, subsequent_indent="  ", break_on_hyphens=False)
    return lines


def methods_overview(error: str | None = None) -> str:
    """Usage, then `run.py: error: ERROR` if given, the methods with one line each and the env
    ids (what `python run.py` alone prints)."""
    return "\n".join([USAGE, *([f"run.py: error: {error}"] if error else []),
                      *_methods_and_envs()])


def _env_defaults_table() -> list[str]:
    """One row per env id of its HELP_DEFAULT_KEYS, read from configs/ENV.yaml now, with a
    line under it for methods whose own entry changes one of them."""
    ids = environments.known_env_ids()
    rows: list[tuple[str, list[str], list[str]]] = []
    for env_id in ids:
        try:
            defaults, methods = env_config(env_id)
        except ExperimentError as error:
            rows.append((env_id, [], [str(error)]))
            continue
        values = {**GLOBAL_DEFAULTS, **defaults}
        by_change: dict[str, list[str]] = {}
        for method, overrides in methods.items():
            change = ", ".join(f"{k} {overrides[k]}" for k in HELP_DEFAULT_KEYS
                               if k in overrides)
            if change:
                by_change.setdefault(change, []).append(method)
        rows.append((env_id, [str(values[k]) for k in HELP_DEFAULT_KEYS],
                     [f"{', '.join(names)}: {change}" for change, names in by_change.items()]))
    first = max(map(len, ids))
    widths = [max(len(key), *(len(r[1][i]) for r in rows if r[1]))
              for i, key in enumerate(HELP_DEFAULT_KEYS)]
    lines = ["  " + " ".join([f"{'env':<{first}}", *(f"{k:>{w}}" for k, w in
                                                     zip(HELP_DEFAULT_KEYS, widths,
                                                         strict=True))])]
    for env_id, values, notes in rows:
        cells = [f"{v:>{w}}" for v, w in zip(values, widths, strict=False)]
        lines.append("  " + " ".join([f"{env_id:<{first}}", *cells]).rstrip())
        lines += [f"    {note}" for note in notes]
    return lines


def help_epilog() -> str:
    """The end of --help: methods, resume, the per-env defaults (read from configs/ENV.yaml
    now) and the rules of the command line."""
    return "\n".join([
        *_methods_and_envs(),
        "",
        "continue a stopped run (its other settings cannot change):",
        "  python run.py resume --snapshot_dir RUN_DIR [--n_epochs N [--shorten]] "
        "[--torch_threads T]",
        "",
        "per-env defaults, from configs/ENV.yaml (flags and --config FILE override them;",
        "other keys: the original's defaults; indented: a method's own entry):",
        *_env_defaults_table(),
        "",
        "A bare boolean flag (--layer_norm) means True; --layer_norm True / False also work.",
        "Flags are never abbreviated. Frequencies are positive; --vis_freq -1 is off.",
    ])


def resolve_config(argv: Sequence[str] | None = None,
                   notes: list[str] | None = None) -> ExperimentConfig:
    """Parse flags and apply the defaults; raises ExperimentError on bad input. Lines to print
    before training (the default env taken) are appended to `notes` when given."""
    _user_method(sys.argv[1:] if argv is None else argv)
    args = vars(build_parser().parse_args(None if argv is None else _bare_booleans(argv)))
    if args["env"] is None:
        args["env"] = DEFAULT_ENV
        if notes is not None:
            notes.append(f"no --env given: training {DEFAULT_ENV}, the built-in 4-task "
                         "laboratory; pass --env=ID for a paper benchmark")
    env_id = args["env"]
    try:
        family = environments.env_class(env_id)
    except environments.UnknownEnvError as error:
        raise ExperimentError(str(error)) from None
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
    spec = method_spec(values["method"])
    default_arch = "separate" if spec.sampling != "mixed" else "multihead"
    policy_arch, q_arch = spec.architectures or (default_arch, default_arch)
    values["policy_architecture"] = values["policy_architecture"] or policy_arch
    values["Q_architecture"] = values["Q_architecture"] or q_arch
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
    "update_path": "str", "use_pc_grad": "bool", "skip_alpha_pc_grad": "bool",
    "grad_clip": "float?", "regularize_representation": "bool",
    "distillation_period": "int", "distillation_n_epochs": "int", "unsupervised": "bool",
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
    if not 0 <= c.seed < SEED_LIMIT:
        raise ExperimentError(f"--seed must be in 0..2**32 - 1, got {c.seed}")
    if c.vis_freq != -1 and c.vis_freq < 1:
        raise ExperimentError("--vis_freq must be positive (a video every K epochs) or -1 "
                              f"(off), got {c.vis_freq}")
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
    if c.distillation_period < 0:
        raise ExperimentError("--distillation_period must be positive, or 0 for off")
    if c.distillation_period > 0:
        if c.method not in ("dnc_sac", "qmp_dnc") or c.policy_architecture != "separate":
            raise ExperimentError("--distillation_period is DnC's: dnc_sac or qmp_dnc with "
                                  "separate policies")
        if c.distillation_period % c.evaluation_frequency:
            raise ExperimentError(f"--distillation_period {c.distillation_period} must be a "
                                  f"multiple of --evaluation_frequency {c.evaluation_frequency}")
        if c.distillation_n_epochs < 1:
            raise ExperimentError("--distillation_n_epochs must be positive")
    if c.regularize_representation and all(v == 0 for v in c.kl_coeff):
        raise ExperimentError("--regularize_representation replaces DnC's KL penalty: give its "
                              "weights with --kl_coeff")
    if c.regularize_representation and c.policy_architecture != "separate":
        raise ExperimentError("--regularize_representation compares separate policies' hidden "
                              "layers: it needs --policy_architecture separate")
    if c.grad_clip is not None and not c.grad_clip > 0:
        raise ExperimentError(f"--grad_clip must be positive, got {c.grad_clip}")
    if c.use_pc_grad and c.spec.sampling != "mixed":
        raise ExperimentError(f"--use_pc_grad applies to the Parameters methods (sac, mtsac, "
                              f"qmp_sac), whose tasks share networks, not to {c.method}")
    if c.use_pc_grad and c.update_path == "hand":
        raise ExperimentError("--use_pc_grad needs the autograd update: drop --update_path hand")
    if (spec.critic == "decaf" or spec.actor_batches != "own") and c.update_path == "hand":
        part = "critics train" if spec.critic == "decaf" else "actor steps on its own batches"
        raise ExperimentError(f"{c.method}'s {part} with autograd: drop --update_path hand")
    if c.update_path not in UPDATE_PATHS:
        raise ExperimentError(f"--update_path must be one of {', '.join(UPDATE_PATHS)}, "
                              f"got {c.update_path!r}")
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
    if not c.unsupervised:
        _validate_cds(c)
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


def _validate_cds(c: ExperimentConfig) -> None:
    """`--unsupervised False` (CDS) is uds_dnc's, as in the original (QMPUDS asserted
    unsupervised), on an env whose reward of a stored transition can be computed exactly."""
    if c.spec.sampling == "sharing" and c.spec.qmp:
        raise ExperimentError(f"{c.method} is unsupervised only (as the original's QMPUDS): "
                              "drop --unsupervised False, or use uds_dnc for CDS")
    if c.spec.sampling != "sharing":
        raise ExperimentError(f"--unsupervised False (CDS) relabels uds_dnc's shared data; "
                              f"{c.method} shares no relabelled data")
    problem = environments.env_class(c.env).reward_fn_problem
    if problem is not None:
        raise ExperimentError(f"--unsupervised False (CDS) needs {c.env}'s reward of stored "
                              f"transitions, but {problem}")


def _validate_architectures(c: ExperimentConfig) -> None:
    spec, archs = c.spec, (c.policy_architecture, c.Q_architecture)
    if spec.architectures is not None:
        if archs != spec.architectures:
            raise ExperimentError(f"{c.method} needs --policy_architecture {spec.architectures[0]} "
                                  f"--Q_architecture {spec.architectures[1]}")
    elif spec.sampling != "mixed":
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


#: config.yaml's key for the run's history (a list, one entry per start and resume); it is no
#: config field: load_run_config leaves it out
PROVENANCE_KEY = "provenance"
#: distributions whose versions each provenance entry records
PROVENANCE_PACKAGES = ("torch", "mujoco", "gymnasium", "metaworld", "gymnasium-robotics",
                       "numpy")
#: seconds each git command of a provenance entry may take
GIT_TIMEOUT = 5.0


def _git(*args: str) -> str | None:
    """The output of `git -C PROJECT ARGS`, or None when git is missing, fails or times out."""
    import subprocess

    root = os.path.dirname(os.path.abspath(__file__))
    try:
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def git_state() -> tuple[str, bool | str]:
    """(commit, dirty) of the project's checkout: dirty when `git status --porcelain` lists
    anything (modified, staged or untracked files); ("unknown", "unknown") when the project is
    not the top of a git checkout or git is missing, "unknown" dirty when the status fails."""
    out = _git("rev-parse", "--show-toplevel", "HEAD")
    lines = (out or "").split()
    root = os.path.dirname(os.path.abspath(__file__))
    if len(lines) != 2 or os.path.realpath(lines[0]) != os.path.realpath(root):
        return "unknown", "unknown"
    status = _git("status", "--porcelain")
    return lines[1], "unknown" if status is None else bool(status.strip())


def provenance_entry(event: str) -> dict[str, Any]:
    """One provenance entry: what happened (`start`, `resume from epoch E`), when (ISO time
    with the UTC offset), where (host), the command line, the project's git commit and whether
    its tree was dirty, and the versions of PROVENANCE_PACKAGES ("not installed" if absent)."""
    import importlib.metadata
    import socket
    import sys

    versions: dict[str, str] = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    commit, dirty = git_state()
    return {
        "event": event,
        "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": list(sys.argv),
        "git_commit": commit,
        "git_dirty": dirty,
        "versions": versions,
    }


def _write_run_yaml(path: str, data: dict[str, Any]) -> None:
    """Write config.yaml through a temporary file and a rename: a kill leaves the old one."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)


def _provenance(path: str) -> list[Any]:
    """The provenance list of an existing config.yaml ([] if there is none or it is unreadable)."""
    try:
        data = _read_yaml(path) if os.path.exists(path) else None
    except ExperimentError:
        return []
    entries = data.get(PROVENANCE_KEY) if isinstance(data, dict) else None
    return list(entries) if isinstance(entries, list) else []


def save_run_config(run_dir: str, config: ExperimentConfig) -> None:
    """Write the resolved config as the run folder's `config.yaml` (read by load_run_config),
    keeping the `provenance` list of the file it replaces."""
    path = os.path.join(run_dir, "config.yaml")
    data = config.to_dict()
    entries = _provenance(path)
    if entries:
        data[PROVENANCE_KEY] = entries
    _write_run_yaml(path, data)


def append_provenance(run_dir: str, event: str) -> dict[str, Any]:
    """Append a `provenance_entry(event)` to the `provenance` list of the run folder's
    config.yaml (written by save_run_config before) and return it. Called at a run's start
    (`start`) and at every resume (`resume from epoch E`)."""
    path = os.path.join(run_dir, "config.yaml")
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ExperimentError(f"{path} is not a run config")
    entry = provenance_entry(event)
    data[PROVENANCE_KEY] = [*_provenance(path), entry]
    _write_run_yaml(path, data)
    return entry


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
    data.pop(PROVENANCE_KEY, None)  # the run's history, not a setting
    if isinstance(data.get("vis_freq"), int) and data["vis_freq"] <= 0:
        data["vis_freq"] = -1  # earlier versions took any value <= 0 as off; -1 is the off now
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


def stored_reward_info_dim(c: ExperimentConfig) -> int:
    """Floats the replay buffers keep per transition for the env's `reward_fn`: only CDS
    (`--unsupervised False`) relabels with it."""
    return 0 if c.unsupervised else environments.env_class(c.env).reward_info_dim


def size_replay_buffers(c: ExperimentConfig, obs_dim: int, action_dim: int, horizon: int
                        ) -> tuple[ExperimentConfig, str | None]:
    """The config with its replay capacity decided, and a line to print when the default was
    lowered. Default: 1e6 per buffer (one per task, or one shared by the Parameters methods)
    as the original, at most what fits in DEFAULT_MEMORY_SHARE of this machine's memory. The
    run's length does not enter: pages are committed only when written, and a run extended by
    `resume --n_epochs` must keep the capacity a run started that long gets. The note is
    printed only when the run could hold more than the lowered capacity. An explicit value is
    kept, or refused if it could not fit in MAX_MEMORY_SHARE."""
    from learning.buffers.replay_buffer import MultiTaskReplayBuffer

    groups = 1 if c.spec.sampling == "mixed" else c.num_tasks
    memory = _machine_memory()
    info_dim = stored_reward_info_dim(c)
    if c.replay_buffer_size is not None:
        need = MultiTaskReplayBuffer.bytes_needed(groups, c.replay_buffer_size, obs_dim,
                                                  action_dim, info_dim)
        if memory is not None and need > MAX_MEMORY_SHARE * memory:
            raise ExperimentError(
                f"replay buffers would need {need / 2**30:.1f} GiB when full "
                f"({groups} x {c.replay_buffer_size} transitions) but this machine has "
                f"{memory / 2**30:.1f} GiB; lower --replay_buffer_size"
            )
        return c, None
    capacity = DEFAULT_REPLAY_CAPACITY
    note = None
    if memory is not None:
        per_buffer = MultiTaskReplayBuffer.bytes_needed(1, 1, obs_dim, action_dim,
                                                        info_dim) * groups
        fits = int(DEFAULT_MEMORY_SHARE * memory // per_buffer)
        if fits < capacity:
            if fits < max(c.min_buffer_size, 1):
                raise ExperimentError(
                    f"replay buffers of --min_buffer_size {c.min_buffer_size} transitions "
                    f"({groups} buffers) do not fit in this machine's "
                    f"{memory / 2**30:.1f} GiB")
            capacity = fits
            if max_env_steps(c, horizon) > fits:
                note = (f"replay buffers: {groups} x {capacity:,} transitions (the default "
                        f"1e6 lowered to fit {DEFAULT_MEMORY_SHARE:.0%} of this machine's "
                        f"{memory / 2**30:.1f} GiB; --replay_buffer_size sets it)")
    return replace(c, replay_buffer_size=capacity), note


def make_log_dir(c: ExperimentConfig) -> str:
    """The run folder: the user's --log_dir if new or empty, else a fresh timestamped folder.
    A folder that cannot be made or written to is an ExperimentError, and leaves nothing."""
    if c.log_dir is not None:
        try:
            used = os.path.exists(c.log_dir) and (not os.path.isdir(c.log_dir)
                                                  or bool(os.listdir(c.log_dir)))
        except OSError as error:
            raise ExperimentError(f"--log_dir {c.log_dir}: cannot read the folder "
                                  f"({error.strerror})") from error
        if used:
            raise ExperimentError(f"--log_dir {c.log_dir} exists and is not empty; "
                                  "refusing to overwrite it")
        _make_writable_folder(c.log_dir, f"--log_dir {c.log_dir}")
        return c.log_dir
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    env_name = c.env.rpartition(":")[2]  # MODULE:ID -> ID
    base = os.path.join("data", f"{c.method}_{env_name}_s{c.seed}_{stamp}")
    path, k = base, 1
    while os.path.exists(path):
        path, k = f"{base}_{k}", k + 1
    _make_writable_folder(path, f"the run folder {path}", hint="; pass --log_dir DIR")
    return path


def _make_writable_folder(path: str, what: str, hint: str = "") -> None:
    """Make `path` (and missing parents) and check a file can be written in it; on failure
    remove the folders made here and raise ExperimentError naming `what`."""
    missing, head = [], os.path.abspath(path)
    while not os.path.exists(head) and os.path.dirname(head) != head:
        missing.append(head)
        head = os.path.dirname(head)
    made: list[str] = []
    try:
        for folder in reversed(missing):
            os.mkdir(folder)
            made.append(folder)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        for folder in reversed(made):
            try:
                os.rmdir(folder)
            except OSError:
                pass
        reason = error.strerror or str(error)
        raise ExperimentError(f"{what}: cannot create a writable folder ({reason}){hint}"
                              ) from error


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """The networks of one run and who gets them: the task policies and Q-functions go to the
    algorithm (SAC trains each task's pair), the behaviour to the sampler (it collects the data:
    each task's own policy, or for QMP methods the Q-switch mixture of all of them)."""

    policy: TaskPolicy
    qf: TwinCritic
    behaviour: Behaviour


def setup(config: ExperimentConfig, family: environments.MultiTaskEnv) -> Setup:
    """Create the task policies and Q-functions of `config`'s architectures for `family`, and
    the data-collecting behaviour (`make_behaviour`)."""
    n, action_dim = family.num_tasks, family.action_dim
    obs_dim = family.network_obs_dim(config.include_task_id)
    policy = TaskPolicy(Architecture(config.policy_architecture), n, obs_dim, action_dim,
                        config.hidden_sizes)
    qf: TwinCritic
    if config.spec.critic == "decaf":
        qf = DecafCritic(n, obs_dim, action_dim, config.hidden_sizes,
                         layer_norm=config.layer_norm)
    else:
        qf = TwinCritic(Architecture(config.Q_architecture), n, obs_dim, action_dim,
                        config.hidden_sizes, layer_norm=config.layer_norm)
    return Setup(policy, qf, make_behaviour(config, policy, qf))


def make_behaviour(config: ExperimentConfig, policy: TaskPolicy, qf: TwinCritic) -> Behaviour:
    """The data-collecting behaviour of the method: own policies, or the Q-switch mixture."""
    if not config.spec.qmp:
        return OwnPolicy(policy)
    return QSwitch(policy, qf, critic_choice=config.qswitch_critic,  # type: ignore[arg-type]
                   sampling_freq=config.policy_sampling_freq)
