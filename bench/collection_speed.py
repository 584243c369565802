"""Collection speed: env steps per second of Separated (dnc_sac) and QMP (qmp_dnc) data collection
against stepping the same lockstep envs with pre-drawn random actions (the simulator's limit).

Networks at the paper's sizes (256, 256), untrained; the collectors write into real replay buffers
and keep episode statistics, exactly as in training.

Each collection rate is one round of the trainer's collector (`Collector.collect`) of
`steps * K * N` env steps in all, allocated to the tasks by `--sampler_type` (whole episodes, see
`learning.samplers.sampler`): stored env steps over the round's wall time. A round may end with a
partial pass in which some env rows wait for others (or are dropped), so it counts what the
trainer gets; the raw rate steps all N * K envs `steps` times with pre-drawn random actions,
no waiting. With `steps` a multiple of the horizon (600: Jaco 200, Maze 600; MT10 500 needs
1000) and episodes that run the whole horizon, every pass is full and nothing waits.

With `--copies K` each task has K env copies (`--envs_per_task K`), so one policy call serves K
steps of every task; the raw rate steps the same N * K envs. Each rate is the best of `--repeats`
interleaved measurements. The last two columns bound QMP from above: the Q-switch's extra matmul
work per env step at the machine's dense matmul rate (measured in the same run), and the QMP /
Separated ratio if the Q-switch cost nothing beyond that work.

    python bench/collection_speed.py [--envs ID ...] [--steps S] [--copies K ...]
                                     [--sampler_type local|mt_local]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch
from common import matmul_gflops, write_table
from torch.utils.flop_counter import FlopCounterMode

import environments
from garage_experiments import task_set_copies
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.nn.heads import Architecture
from learning.policies.behaviour import OwnPolicy
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic
from learning.samplers.sampler import SAMPLER_TYPES, Collector, TaskVectorEnv


def make_venv(family: environments.MultiTaskEnv, copies: int) -> TaskVectorEnv:
    envs = task_set_copies(family, copies, evaluation=False, seed=0)
    return TaskVectorEnv(envs, family.horizon, seed=0)


def raw_rate(family: environments.MultiTaskEnv, copies: int, steps: int) -> float:
    venv = make_venv(family, copies)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, venv.num_envs, family.action_dim))
    actions = actions.astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    rate = steps * venv.num_envs / (time.perf_counter() - start)
    venv.close()
    return rate


def switch_floor_us(family: environments.MultiTaskEnv, copies: int, rate_gflops: float
                    ) -> float:
    """Extra microseconds per env step that the Q-switch costs over the own-policy call if its
    matmuls ran at the machine's dense matmul rate with no other overhead: N policy and N
    critic forward passes per env step instead of one policy pass."""
    n, a = family.num_tasks, family.action_dim
    d = family.network_obs_dim()
    policy = TaskPolicy(Architecture.SEPARATE, n, d, a, [256, 256])
    critic = TwinCritic(Architecture.SEPARATE, n, d, a, [256, 256])
    obs = torch.zeros(copies, n, d)
    steps = np.zeros((copies, n), dtype=np.int64)
    flops = []
    for behaviour in (OwnPolicy(policy), QSwitch(policy, critic)):
        with FlopCounterMode(display=False) as counter:
            behaviour.act(obs, steps)
        flops.append(counter.get_total_flops())
    return (flops[1] - flops[0]) / (rate_gflops * 1e3) / (copies * n)


def collection_rate(family: environments.MultiTaskEnv, copies: int, qmp: bool, steps: int,
                    sampler_type: str) -> float:
    """Stored env steps per second of one collection round of `steps * copies * N` steps."""
    n, a = family.num_tasks, family.action_dim
    d = family.network_obs_dim()
    policy = TaskPolicy(Architecture.SEPARATE, n, d, a, [256, 256])
    critic = TwinCritic(Architecture.SEPARATE, n, d, a, [256, 256])
    behaviour = QSwitch(policy, critic) if qmp else OwnPolicy(policy)
    total = steps * copies * n
    # a task may get more than its share (`local` gives tasks with long episodes more), but no
    # task stores more than the round plus one episode, and the warm-up round less than that
    capacity = total + 2 * family.horizon
    buffer = MultiTaskReplayBuffer(n, capacity, d, a, seed=0)
    collector = Collector(
        make_venv(family, copies), behaviour, buffer, functools.partial(family.split_observation),
        discount=0.99, info_metrics=family.episode_info_metrics,
        sampler_type=sampler_type,  # type: ignore[arg-type]
    )
    collector.collect(1)  # warm-up: one pass (whole episodes), not timed
    start = time.perf_counter()
    stored = int(collector.collect(total).sum())
    rate = stored / (time.perf_counter() - start)
    collector.venv.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+",
                        default=["JacoReachMT5-v1", "MazeLarge-10-v0", "MetaWorldMT10-v2"])
    parser.add_argument("--steps", type=int, default=600,
                        help="a round of steps * copies * N env steps per measurement")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 8],
                        help="env copies per task (--envs_per_task) to measure")
    parser.add_argument("--out", default="collection_speed", help="name of the results table")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements of each rate, interleaved; the best is kept")
    parser.add_argument("--sampler_type", choices=list(SAMPLER_TYPES), default="local",
                        help="how the collector allocates a round's steps to the tasks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rate = matmul_gflops()
    print(f"dense matmul rate: {rate:.0f} GFLOP/s", flush=True)
    rows = []
    for env_id in args.envs:
        family = environments.make_multitask_env(env_id, seed=0)
        for copies in args.copies:
            rates = np.zeros((args.repeats, 3))
            for r in range(args.repeats):  # interleaved, so a busy moment hits all three
                rates[r] = (raw_rate(family, copies, args.steps),
                            collection_rate(family, copies, False, args.steps,
                                            args.sampler_type),
                            collection_rate(family, copies, True, args.steps,
                                            args.sampler_type))
            raw, sep, qmp = rates.max(0)
            floor = switch_floor_us(family, copies, rate)
            ceiling = (1e6 / sep) / (1e6 / sep + floor)
            rows.append([env_id, family.num_tasks, copies, args.sampler_type, round(raw),
                         round(sep), round(qmp), f"{sep / raw:.0%}", f"{qmp / sep:.0%}",
                         round(floor, 1), f"{ceiling:.0%}"])
            print(rows[-1], flush=True)
    write_table(args.out, ["env", "N", "envs_per_task", "sampler", "raw steps/s",
                                     "dnc_sac steps/s", "qmp_dnc steps/s",
                                     "Separated / raw (>= 70%)", "QMP / Separated (>= 80%)",
                                     "Q-switch floor us/step", "QMP / Separated ceiling"],
                rows)


if __name__ == "__main__":
    main()
