"""Build and run one experiment from a resolved config: the wiring of every method.

Each method is the same pipeline with three switches (see experiment_utils.METHODS): how batches
are drawn (per task / mixed / with sharing), whether the Q-switch collects the data, and how the
temperatures are kept. Networks: per-task ensembles (separate) or one multi-head/shared network.
"""

from __future__ import annotations

import csv
import datetime
import functools
import os
import shutil
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

import environments
from environments.rendering import rendering_problem
from experiment_utils import (
    ExperimentConfig,
    ExperimentError,
    append_provenance,
    env_options,
    load_run_config,
    make_behaviour,
    save_run_config,
    set_seed,
    setup,
    size_replay_buffers,
    stored_reward_info_dim,
)
from learning.algorithms.distillation import Distillation
from learning.algorithms.learner import Learner
from learning.algorithms.pcgrad import PCGrad, sac_reach
from learning.algorithms.sac import Extensions, MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.policies.behaviour import Behaviour, OwnPolicy
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic
from learning.runs.checkpoint import (
    CheckpointError,
    CheckpointWriter,
    checkpoint_paths,
    load_checkpoint,
)
from learning.runs.evaluation import (
    BackgroundEvaluation,
    Evaluator,
    InlineEvaluation,
    evaluation_copies,
    serve_evaluations,
)
from learning.runs.run_logger import RunLogger
from learning.runs.runtime import configure_runtime
from learning.runs.stopping import StopSignals, ignore_stop_signals
from learning.runs.trainer import Schedule, Trainer
from learning.runs.video import record_videos
from learning.samplers.sampler import Collector, TaskVectorEnv

#: evaluation envs are seeded apart from the training envs
EVAL_SEED_OFFSET = 10_000


def kl_matrix(config: ExperimentConfig) -> torch.Tensor | None:
    """The DnC beta matrix (row i: policy i's weights), or None when regularisation is off."""
    values = config.kl_coeff
    if all(v == 0 for v in values):
        return None
    n = config.num_tasks
    if len(values) == 1:
        return torch.full((n, n), float(values[0]))
    return torch.tensor(values, dtype=torch.float32).view(n, n)


def update_extensions(config: ExperimentConfig, policy: TaskPolicy, critic: TwinCritic
                      ) -> Extensions | None:
    """What the method adds to the SAC update (its own parts, or PCGrad from the flags)."""
    own = config.spec.extensions
    if own is not None:
        if config.use_pc_grad:
            raise ExperimentError(f"{config.method} sets its own update extensions; "
                                  "--use_pc_grad cannot be added to them")
        return own(config, policy, critic)
    if not config.use_pc_grad:
        return None
    reach = sac_reach(policy, critic, config.num_tasks, config.spec.per_task_temperature)
    stages = ("critic", "actor") + (() if config.skip_alpha_pc_grad else ("temperature",))
    return Extensions(gradient_transform=PCGrad(reach), transform_stages=stages,
                      per_task_reduction="mean")


def task_set_copies(family: environments.MultiTaskEnv, copies: int, *, evaluation: bool,
                    seed: int) -> list[gym.Env]:
    """`copies` instances of every task env, copy-major. Copy 0 keeps the family's own seeds;
    copy c is seeded from `seed + 100_000 * c` (train and evaluation instances stay apart)."""
    envs: list[gym.Env] = []
    for c in range(copies):
        envs += family.make_task_envs(evaluation=evaluation,
                                      seed=None if c == 0 else seed + 100_000 * c)
    return envs


def build_inline_evaluation(config: ExperimentConfig, family: environments.MultiTaskEnv,
                            policy: TaskPolicy, critic: TwinCritic) -> InlineEvaluation:
    """Evaluation envs (copies of the task set, see learning.runs.evaluation) and behaviours."""
    n = family.num_tasks
    per_task = config.num_evaluation_episodes // n
    copies = evaluation_copies(per_task, n, family.eval_copies_limit)
    envs = task_set_copies(family, copies, evaluation=True, seed=config.seed)
    split = functools.partial(family.split_observation, include_task_id=config.include_task_id)
    evaluator = Evaluator(envs, n, family.horizon, split, per_task, config.discount,
                          family.episode_info_metrics, config.seed + EVAL_SEED_OFFSET)
    # the authors' keys: QMP methods log the mixture (Q-switch acting, mean action of the selected
    # policy) under "Evaluation" and each task's own policy under "Evaluation/p"; other methods
    # log their own policy under "Evaluation" only
    behaviours: dict[str, Behaviour] = {"Evaluation": make_behaviour(config, policy, critic)}
    if config.spec.qmp:
        behaviours["Evaluation/p"] = OwnPolicy(policy)
    extra = [name for name, _ in family.episode_info_metrics.values()]
    return InlineEvaluation(evaluator, behaviours, extra)


def _evaluation_worker(conn: Any, config_dict: dict[str, Any]) -> None:
    """Entry point of the background evaluation process (see learning.runs.evaluation)."""
    ignore_stop_signals()  # the training process ends it (a Ctrl-C reaches both)
    config = ExperimentConfig(**config_dict)
    configure_runtime(1)  # one core's work: the training process keeps the others
    torch.manual_seed(config.seed)
    family = environments.make_multitask_env(config.env, seed=config.seed, **env_options(config))
    nets = setup(config, family)
    evaluation = build_inline_evaluation(config, family, nets.policy, nets.qf)
    serve_evaluations(conn, evaluation, {"policy": nets.policy, "critic": nets.qf})


def build_trainer(config: ExperimentConfig, log_dir: str, *, stdout: bool = True,
                  resume_epoch: int | None = None) -> Trainer:
    """Everything one run needs, seeded from config.seed (`resume_epoch`: the run folder already
    holds this run up to that epoch; its logs are continued, see `resume_experiment`)."""
    configure_runtime(config.torch_threads)
    if config.vis_freq > 0:  # before anything is written: videos need offscreen rendering
        problem = rendering_problem()
        if problem is not None:
            raise ExperimentError(f"--vis_freq {config.vis_freq}: {problem}")
    set_seed(config.seed)
    spec = config.spec
    family = environments.make_multitask_env(config.env, seed=config.seed, **env_options(config))
    n = family.num_tasks
    obs_dim = family.network_obs_dim(config.include_task_id)
    action_dim = family.action_dim
    if resume_epoch is None:
        config, note = size_replay_buffers(config, obs_dim, action_dim, family.horizon)
        if note is not None and stdout:
            print(note, flush=True)
    else:  # the run's own capacity (checked against this machine's memory)
        size_replay_buffers(config, obs_dim, action_dim, family.horizon)
    split = functools.partial(family.split_observation, include_task_id=config.include_task_id)

    # the task policies and Q-functions go to the algorithm, the behaviour (for QMP methods the
    # Q-switch mixture) to the sampler
    nets = setup(config, family)
    policy, critic = nets.policy, nets.qf
    sac = MultiTaskSAC(
        policy,
        critic,
        n,
        action_dim,
        SACConfig(
            discount=config.discount,
            target_update_tau=config.target_update_tau,
            reward_scale=config.reward_scale,
            lr=config.lr,
            target_entropy=config.target_entropy,
            per_task_temperature=spec.per_task_temperature,
            temperature_loss=spec.temperature_loss,
            grad_clip=config.grad_clip,
            dnc_penalty="representation" if config.regularize_representation else "kl",
        ),
        kl_coeff=kl_matrix(config),
        update_path=config.update_path,  # type: ignore[arg-type]
        extensions=update_extensions(config, policy, critic),
    )
    assert config.replay_buffer_size is not None
    buffer = MultiTaskReplayBuffer(n, config.replay_buffer_size, obs_dim, action_dim, config.seed,
                                   shared=spec.sampling == "mixed",
                                   reward_info_dim=stored_reward_info_dim(config))
    learner = Learner(
        sac,
        buffer,
        sampling=spec.sampling,
        gradient_steps_per_itr=config.gradient_steps_per_itr,
        buffer_batch_size=config.buffer_batch_size,
        min_buffer_size=config.min_buffer_size,
        min_reward=family.min_reward,
        sharing_quantile=config.sharing_quantile,
        distillation=None if config.distillation_period == 0 else Distillation(
            policy, config.lr, config.distillation_n_epochs,
            max(1, config.buffer_batch_size // n)),
        distillation_period=config.distillation_period,
        actor_batches=spec.actor_batches,
        reward_fn=None if config.unsupervised else family.reward_fn,
    )
    collector = Collector(
        TaskVectorEnv(task_set_copies(family, config.envs_per_task, evaluation=False,
                                      seed=config.seed), family.horizon, config.seed),
        nets.behaviour,
        buffer,
        split,
        discount=config.discount,
        info_metrics=family.episode_info_metrics,
        sampler_type=config.sampler_type,  # type: ignore[arg-type]
    )
    evaluation: InlineEvaluation | BackgroundEvaluation
    if config.eval_in_background:
        evaluation = BackgroundEvaluation({"policy": policy, "critic": critic},
                                          _evaluation_worker, (config.to_dict(),))
    else:
        evaluation = build_inline_evaluation(config, family, policy, critic)

    logger = RunLogger(log_dir, stdout=stdout, resume_epoch=resume_epoch,
                       wandb_config=config.to_dict() if config.wandb else None)
    if resume_epoch is None:
        save_run_config(log_dir, config)
        append_provenance(log_dir, "start")

    def videos(epoch: int) -> list[str]:
        behaviours = {"own": OwnPolicy(policy)}
        if spec.qmp:
            behaviours["mixture"] = make_behaviour(config, policy, critic)
        return record_videos(family, behaviours, split, log_dir, epoch,
                             seed=config.seed + EVAL_SEED_OFFSET)

    return Trainer(
        schedule=Schedule(config.n_epochs, config.steps_per_epoch, config.batch_size,
                          config.evaluation_frequency),
        learner=learner,
        collector=collector,
        evaluation=evaluation,
        logger=logger,
        log_mixture=spec.qmp,
        checkpoints=CheckpointWriter(log_dir, keep=config.keep_checkpoints,
                                     extra={"config": config.to_dict()}),
        snapshot_gap=config.snapshot_gap,
        snapshot_interval=config.snapshot_interval,
        threads=config.torch_threads,
        videos=videos,
        vis_freq=config.vis_freq,
        exact_env_state=family.exact_resume,
    )


def run_experiment(config: ExperimentConfig, log_dir: str, *, stdout: bool = True
                   ) -> dict[str, Any]:
    """Train, evaluate and log one run; returns the last epoch's metrics."""
    with StopSignals() as stop:  # from the start: a signal while building stops the run too
        trainer = build_trainer(config, log_dir, stdout=stdout)
        return _train(trainer, config, log_dir, stdout, stop)


class NothingToDo(Exception):
    """`resume` of a run that has already finished all its epochs."""


def _finished_epochs(run_dir: str) -> int:
    """Epochs with a row in the run's progress.csv (rows are written in epoch order)."""
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.exists(path):
        return 0
    with open(path, newline="") as f:
        epochs = [row.get("Epoch") for row in csv.DictReader(f)]
    return int(float(epochs[-1])) + 1 if epochs and epochs[-1] not in (None, "") else 0


def _restart(run_dir: str, config: ExperimentConfig, stdout: bool
             ) -> tuple[ExperimentConfig, dict[str, Any]]:
    """A run stopped before its first checkpoint: start it over from its config.yaml, with the
    files it had written moved aside (never deleted)."""
    aside = os.path.join(run_dir, "restarted_" + datetime.datetime.now().strftime(
        "%Y%m%d-%H%M%S"))
    os.makedirs(aside)
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if name != "config.yaml" and path != aside and not name.startswith("restarted_"):
            shutil.move(path, os.path.join(aside, name))
    print(f"{run_dir} has no checkpoint (it stopped before its first epoch finished): "
          f"starting it over from its config.yaml; its earlier files are in {aside}",
          flush=True)
    with StopSignals() as stop:
        trainer = build_trainer(config, run_dir, stdout=stdout)
        return config, _train(trainer, config, run_dir, stdout, stop)


#: settings a resume may change: how long the run is and how many threads it uses
RESUME_MAY_CHANGE = ("n_epochs", "torch_threads")


def resume_experiment(run_dir: str, *, n_epochs: int | None = None, shorten: bool = False,
                      torch_threads: int | None = None, stdout: bool = True
                      ) -> tuple[ExperimentConfig, dict[str, Any]]:
    """Continue a run from its newest checkpoint (`n_epochs` may extend it, or shorten it
    with `shorten`; `torch_threads` changes its threads from now on). A run without a
    checkpoint starts over; a finished one raises NothingToDo."""
    if torch_threads is not None and torch_threads < 1:
        raise ExperimentError("--torch_threads must be positive")
    config = original = load_run_config(run_dir)
    threads = {} if torch_threads is None else {"torch_threads": torch_threads}
    paths = checkpoint_paths(run_dir)
    if not paths:
        if n_epochs is not None:
            config = replace(config, n_epochs=n_epochs)
        return _restart(run_dir, replace(config, **threads), stdout)
    try:
        state = load_checkpoint(paths[-1])
    except CheckpointError as error:
        raise ExperimentError(str(error)) from error
    try:  # through the config class, so keys added since the run started take their defaults
        saved = ExperimentConfig(**state["config"]).to_dict()
    except TypeError as error:
        raise ExperimentError(f"{paths[-1]} is not a checkpoint of this version") from error
    unchanged = dict.fromkeys(RESUME_MAY_CHANGE)
    if {**saved, **unchanged} != {**config.to_dict(), **unchanged}:
        raise ExperimentError(f"{run_dir}/config.yaml does not match its checkpoint; "
                              "refusing to resume with a changed configuration")
    epoch, before = int(state["epoch"]), config.n_epochs
    pending = state["trainer"]["pending"]
    if n_epochs is not None:
        if n_epochs <= epoch:
            raise ExperimentError(f"--n_epochs {n_epochs}: the run already has "
                                  f"{epoch + 1} epochs")
        if n_epochs < before and not shorten:
            raise ExperimentError(f"--n_epochs {n_epochs} would shorten the run from {before} "
                                  "epochs; pass --shorten as well to do that")
        config = replace(config, n_epochs=n_epochs)
    config = replace(config, **threads)
    done = pending is None or _finished_epochs(run_dir) > int(pending["Epoch"])
    if epoch + 1 >= config.n_epochs and done:
        raise NothingToDo(f"{run_dir} already finished its {config.n_epochs} epochs (0-"
                          f"{config.n_epochs - 1}); nothing to do (--n_epochs N extends it)")
    resume_epoch = int(pending["Epoch"]) if pending is not None else epoch + 1
    if stdout:
        change = (f", {'extended' if config.n_epochs > before else 'shortened'} from {before}"
                  if config.n_epochs != before else "")
        redo = (f"; redoing the evaluation of epoch {resume_epoch}"
                if pending is not None else "")
        print(f"resuming {run_dir} from its checkpoint of epoch {epoch}: training epochs "
              f"{epoch + 1}-{config.n_epochs - 1} of {config.n_epochs}{change}{redo}",
              flush=True)
    with StopSignals() as stop:
        trainer = build_trainer(config, run_dir, stdout=stdout, resume_epoch=resume_epoch)
        trainer.load_state_dict(state)
        if config != original:
            save_run_config(run_dir, config)
        append_provenance(run_dir, f"resume from epoch {epoch}")
        return config, _train(trainer, config, run_dir, stdout, stop, resumed=True)


def _train(trainer: Trainer, config: ExperimentConfig, log_dir: str, stdout: bool,
           stop: StopSignals, resumed: bool = False) -> dict[str, Any]:
    """Train with SIGINT / SIGTERM turned into a clean stop (see learning.runs.stopping)."""
    try:
        if stdout and not resumed:
            config = load_run_config(log_dir)  # as built (the replay capacity decided)
            print(f"{config.method} on {config.env} ({config.num_tasks} tasks), "
                  f"seed {config.seed}, logging to {log_dir}\nresolved config:\n"
                  + yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None),
                  flush=True)
        trainer.stop = stop
        return trainer.train()
    finally:
        trainer.close()


def final_summary(metrics: dict[str, Any], num_tasks: int, qmp: bool) -> str:
    """Per-task final success (QMP: of the mixture, `Evaluation/`, and of the own policy,
    `Evaluation/p/`) and, for QMP, the last epoch's mixture matrix, as text."""
    lines: list[str] = []
    evaluations = ([("Evaluation", "mixture (Q-switch acting)"),
                    ("Evaluation/p", "own policy of each task")]
                   if qmp else [("Evaluation", "own policy of each task")])
    for prefix, label in evaluations:
        lines.append(f"Final evaluation, {label}, logged as {prefix}/...:")
        for k in range(num_tasks):
            lines.append(f"  task {k}: success {metrics.get(f'{prefix}/Task{k}/SuccessRate'):.2f}"
                         f"  return {metrics.get(f'{prefix}/Task{k}/AverageReturn'):.2f}")
        lines.append(f"  all:    success {metrics.get(f'{prefix}/SuccessRate'):.2f}")
    if qmp:
        probs = np.array([[metrics[f"Train/LocalPolicy{i}/Policy{j}Prob"] for j in range(num_tasks)]
                          for i in range(num_tasks)])
        lines.append("Mixture matrix of the last epoch (row: task, column: acting policy):")
        for i in range(num_tasks):
            lines.append(f"  task {i}: " + " ".join(f"{p:.2f}" for p in probs[i]))
    return "\n".join(lines)
