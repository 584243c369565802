"""What the sampler choice costs and what it allocates: `--sampler_type local` (garage's
LocalSampler: one whole episode of each task in task order, cycling from task 0, until the round
has batch_size steps) against `mt_local` (every task whole episodes until it has batch_size / N).

For each env, behaviour (dnc_sac: each task's own policy; qmp_dnc: the Q-switch) and sampler,
the trainer's own `Collector` runs `--rounds` collection rounds of the env's batch_size
(configs/ENV.yaml) with untrained networks at the env's paper sizes ((256, 256), separate per
task), on one torch thread as training does by default. Both samplers of a behaviour share the
same networks and identically seeded envs, and their rounds alternate (which goes first
alternates too), so a drifting machine speed hits both alike. Columns:

* round 1 samples / gradient steps per task: the env steps each task stored in the first round,
  and the gradient steps the Separated methods give each task for it (`split_gradient_steps` of
  the env's gradient_steps_per_itr, in proportion to the samples);
* stored steps / round: the mean over the rounds;
* env steps/s: stored env steps over the rounds' wall time (policy calls included), and relative
  to `local` with the same behaviour;
* idle row-steps: the share of (lockstep steps x env rows) in which a row did not step, waiting
  for the other rows of its pass to finish (or stopped already); a policy call still serves it;
* dropped steps: the share of the env steps taken that were not stored (rows stopped mid-episode
  because the episodes before them in the sequential order already complete the round);
* early-ended episodes: stored episodes shorter than the horizon (terminations) over all stored;
* warm-up: the rounds (and env steps) that fill every task's buffer to min_buffer_size
  (`Learner.steps_to_collect` asks for min_buffer_size * N a round while any task is short),
  computed for full-length episodes, which is what an untrained policy runs when no episode
  ends early (see the previous column).

Then the epoch time of `--epoch_method` on `--epoch_env` under both samplers, through
`epoch_speed.py`'s runs of the real trainer (`--epochs` epochs each, the first excluded; `--epochs
0` skips it; about 1.5 minutes for Jaco). The same runs are `python bench/epoch_speed.py
--methods qmp_dnc --epochs 3 --threads T --flags "--sampler_type mt_local"` (and `local`). Under
`--threads 2` training paces itself against the background evaluation's core: on a machine that
other processes also load this can slow an epoch tenfold, so use it only on an idle machine (the
default, 1, is the trainer's default). The whole script takes about 5 minutes on 2 idle cores,
most of it Kitchen's simulator. Tables: bench/results/sampler_cost.md and sampler_cost_epoch.md
(and .csv).

    python bench/sampler_cost.py [--envs ID ...] [--rounds R] [--epochs K] [--threads T]
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from typing import Any

import numpy as np
import torch
from common import write_table
from epoch_speed import seconds_per_epoch

import environments
from experiment_utils import ExperimentConfig, make_behaviour, resolve_config, setup
from garage_experiments import task_set_copies
from learning.algorithms.learner import split_gradient_steps
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.samplers.sampler import SAMPLER_TYPES, Collector, TaskVectorEnv

BEHAVIOURS = ("dnc_sac", "qmp_dnc")


def full_length_allocation(sampler: str, num_steps: int, n: int, horizon: int) -> np.ndarray:
    """Per-task steps of one round of `num_steps` when every episode runs the whole horizon."""
    if sampler == "local":
        episodes = math.ceil(num_steps / horizon)
        return np.array([episodes // n + (i < episodes % n) for i in range(n)]) * horizon
    return np.full(n, math.ceil(num_steps / (n * horizon)) * horizon)


def warmup_rounds(sampler: str, min_buffer_size: int, n: int, horizon: int) -> tuple[int, int]:
    """(rounds, env steps) until every task holds min_buffer_size, for full-length episodes."""
    sizes = np.zeros(n, dtype=np.int64)
    rounds = 0
    while (sizes < min_buffer_size).any():
        sizes += full_length_allocation(sampler, max(1, min_buffer_size * n), n, horizon)
        rounds += 1
    return rounds, int(sizes.sum())


class CountedCollector:
    """A `Collector` whose vector env counts its lockstep steps and the rows that stepped."""

    def __init__(self, config: ExperimentConfig, family: environments.MultiTaskEnv,
                 behaviour: Any, capacity: int) -> None:
        n = family.num_tasks
        venv = TaskVectorEnv(task_set_copies(family, config.envs_per_task, evaluation=False,
                                             seed=config.seed), family.horizon, config.seed)
        buffer = MultiTaskReplayBuffer(n, capacity, family.network_obs_dim(config.include_task_id),
                                       family.action_dim, config.seed)
        split = functools.partial(family.split_observation,
                                  include_task_id=config.include_task_id)
        self.collector = Collector(venv, behaviour, buffer, split,
                                   discount=config.discount,
                                   info_metrics=family.episode_info_metrics,
                                   sampler_type=config.sampler_type,  # type: ignore[arg-type]
                                   )
        self.horizon = family.horizon
        self.calls = self.stepped = 0
        self.seconds = 0.0
        self.stored = 0
        self.episodes = self.early = 0
        self.first: np.ndarray | None = None
        step = venv.step

        def counted(actions: np.ndarray, active: np.ndarray | None = None) -> Any:
            self.calls += 1
            self.stepped += venv.num_envs if active is None else int(active.sum())
            return step(actions, active)

        venv.step = counted  # type: ignore[method-assign]

    def warm_up(self) -> None:
        """One untimed, uncounted round (first policy calls, allocations)."""
        self.collector.collect(1)
        self.collector.pop_episodes()
        self.calls = self.stepped = 0

    def round(self, num_steps: int) -> None:
        start = time.perf_counter()
        samples = self.collector.collect(num_steps)
        self.seconds += time.perf_counter() - start
        if self.first is None:
            self.first = samples
        self.stored += int(samples.sum())
        episodes = self.collector.pop_episodes()
        self.episodes += len(episodes)
        self.early += sum(e.length < self.horizon for e in episodes)

    def close(self) -> None:
        self.collector.venv.close()


def joined(values: np.ndarray) -> str:
    return "/".join(str(int(v)) for v in values)


def env_rows(env_id: str, rounds: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for method in BEHAVIOURS:
        configs = {s: resolve_config([method, f"--env={env_id}", "--sampler_type", s])
                   for s in SAMPLER_TYPES}
        config = configs["local"]
        family = environments.make_multitask_env(env_id, seed=config.seed)
        n, horizon, batch = family.num_tasks, family.horizon, config.batch_size
        torch.manual_seed(config.seed)
        nets = setup(config, family)
        policy, critic = nets.policy, nets.qf
        capacity = (rounds + 1) * (batch + horizon)  # no task stores more than a round + 1 episode
        collectors = {s: CountedCollector(c, family, make_behaviour(c, policy, critic), capacity)
                      for s, c in configs.items()}
        for c in collectors.values():
            c.warm_up()
        for r in range(rounds):
            order = list(SAMPLER_TYPES) if r % 2 == 0 else list(SAMPLER_TYPES)[::-1]
            for s in order:
                collectors[s].round(batch)
        local_rate = collectors["local"].stored / collectors["local"].seconds
        for s, c in collectors.items():
            assert c.first is not None
            rate = c.stored / c.seconds
            grads = split_gradient_steps(config.gradient_steps_per_itr, c.first)
            warm, warm_steps = warmup_rounds(s, config.min_buffer_size, n, horizon)
            rows.append([env_id, n, method, s, batch, joined(c.first), joined(grads),
                         round(c.stored / rounds), round(rate), f"{rate / local_rate:.0%}",
                         f"{1 - c.stepped / (c.calls * c.collector.venv.num_envs):.0%}",
                         f"{1 - c.stored / c.stepped:.0%}", f"{c.early}/{c.episodes}",
                         f"{warm} ({warm_steps})"])
            print(rows[-1], flush=True)
            c.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="*", default=["JacoReachMT5-v1", "KitchenMTEasy-v0"],
                        help="envs of the collection table (none: skip it)")
    parser.add_argument("--rounds", type=int, default=3, help="collection rounds per row")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs of each epoch-time run (0: skip them; else >= 3)")
    parser.add_argument("--epoch_env", default="JacoReachMT5-v1")
    parser.add_argument("--epoch_method", default="qmp_dnc", choices=BEHAVIOURS)
    parser.add_argument("--threads", type=int, default=1,
                        help="--torch_threads of those runs (2 only on an otherwise idle machine)")
    parser.add_argument("--out", default="sampler_cost", help="name of the results tables")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if 0 < args.epochs < 3:
        parser.error("--epochs must be 0 or at least 3 (the first epoch is excluded)")
    torch.set_num_threads(1)
    if args.envs:
        rows = [row for env_id in args.envs for row in env_rows(env_id, args.rounds)]
        write_table(args.out, ["env", "N", "behaviour", "sampler", "round steps",
                               "round 1 samples per task", "round 1 gradient steps per task",
                               "stored steps / round", "env steps/s", "vs local",
                               "idle row-steps", "dropped steps", "early-ended episodes",
                               "warm-up rounds (env steps), full-length episodes"], rows)
    if args.epochs:
        rows = []
        for s in SAMPLER_TYPES:
            per_epoch, first, n_epochs, steps = seconds_per_epoch(
                args.epoch_env, args.epoch_method, args.epochs, None, args.threads,
                ["--sampler_type", s])
            hours = (first + per_epoch * (n_epochs - 1)) / 3600
            rows.append([args.epoch_env, args.epoch_method, s, args.threads, args.epochs,
                         round(first, 1), round(per_epoch, 2), round(hours, 2)])
            print(rows[-1], flush=True)
        write_table(args.out + "_epoch", ["env", "method", "sampler", "threads", "epochs run",
                                          "first epoch s (fills buffers)", "s / epoch",
                                          "projected hours (paper epochs)"], rows)


if __name__ == "__main__":
    main()
