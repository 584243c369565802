"""Single-task SAC throughput: this project's SAC (the multi-task pieces with N = 1) against
Stable-Baselines3's SAC on gymnasium Walker2d-v5, both on the CPU with the same settings: (256, 256)
actor and twin critics, batch 256, one gradient update per env step, automatic temperature.

Protocol, the same for both and for every torch thread count:
* build the agent (not timed), then W warm-up env steps without updates (not timed):
  SB3 (learning_starts=W) acts uniformly at random; ours (min_buffer_size=W) acts with its
  untrained policy;
* time the next T env steps, each followed by one gradient update. For SB3 one `learn(W + T)` call
  is made; a callback records the clock when step W has been taken (before any update: SB3 trains
  only once num_timesteps > learning_starts), and the window ends when `learn` returns. Ours is
  the training loop's `collector.collect(1); learner.train_round(1)`;
* repeat `--repeats` times (fresh agent, alternating which goes first) and keep the best.

Both get `gymnasium.make("Walker2d-v5", disable_env_checker=True)`: SB3 as is (its TimeLimit ends
episodes at 1000 steps; SB3 adds its Monitor and DummyVecEnv), ours `.unwrapped` as the project's
env families do (TaskVectorEnv ends episodes at the 1000-step horizon itself). Both run in this
one process, so both get the runtime settings that importing `common` applies. The last column is
the highest 1-minute load average seen during the row (it counts this benchmark's own threads):
"busy" marks a row where other processes were running too, which slows both, and with 2 threads
on a 2-core machine can slow either by 10x: rerun such rows.

Stable-Baselines3 is a benchmark-only dependency: pip install -r bench/requirements.txt

    python bench/sb3_compare.py [--threads 1 2] [--warmup 1000] [--steps 2000] [--repeats 2]
    python bench/sb3_compare.py --profile 300   # cProfile of ours over 300 steps, top costs

"matmul floor" is one update's FLOPs (torch's FlopCounterMode) at the machine's dense matmul rate
at that thread count; "ceiling" is SB3's time per step over that floor: the most any
implementation of the same update could gain on SB3 here.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from common import matmul_gflops, write_table
from torch.utils.flop_counter import FlopCounterMode

from learning.behaviour import OwnPolicy
from learning.learner import Learner
from learning.replay_buffer import MultiTaskReplayBuffer
from learning.sac import MultiTaskSAC, SACConfig
from learning.sampler import Collector, TaskVectorEnv
from learning.task_networks import Architecture, TaskPolicy, TwinCritic

ENV_ID = "Walker2d-v5"
HORIZON = 1000
HIDDEN = [256, 256]
BATCH = 256
BUFFER = 100_000


def make_env() -> gym.Env:
    return gym.make(ENV_ID, disable_env_checker=True)


class Ours:
    """This project's SAC for one task, wired as garage_experiments.build_trainer wires N."""

    def __init__(self, warmup: int, seed: int) -> None:
        torch.manual_seed(seed)
        env = make_env().unwrapped
        obs_dim = env.observation_space.shape[0]
        act_dim = env.action_space.shape[0]
        policy = TaskPolicy(Architecture.SEPARATE, 1, obs_dim, act_dim, HIDDEN)
        critic = TwinCritic(Architecture.SEPARATE, 1, obs_dim, act_dim, HIDDEN)
        sac = MultiTaskSAC(policy, critic, 1, act_dim, SACConfig())
        buffer = MultiTaskReplayBuffer(1, BUFFER, obs_dim, act_dim, seed)
        self.learner = Learner(sac, buffer, sampling="per_task", gradient_steps_per_itr=1,
                               buffer_batch_size=BATCH, min_buffer_size=warmup)
        self.collector = Collector(TaskVectorEnv([env], HORIZON, seed), OwnPolicy(policy),
                                   buffer, lambda o: o, discount=0.99, info_metrics={})

    def step(self) -> None:
        """One env step, then one gradient update once the warm-up is over."""
        self.collector.collect(1)
        self.learner.train_round(1)

    @property
    def updates(self) -> int:
        return self.learner.gradient_steps


def time_ours(warmup: int, steps: int, seed: int) -> tuple[float, int]:
    """Seconds for `steps` env steps + updates after the warm-up, and the updates made in them."""
    agent = Ours(warmup, seed)
    agent.collector.collect(warmup)  # the warm-up round, as the trainer runs it
    assert agent.updates == 0 and not agent.learner.warming_up()
    start = time.perf_counter()
    for _ in range(steps):
        agent.step()
    return time.perf_counter() - start, agent.updates


def time_sb3(warmup: int, steps: int, seed: int) -> tuple[float, int]:
    """Same for Stable-Baselines3: the clock starts at env step `warmup` (a callback)."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    class StartClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.start = float("nan")
            self.updates_at_start = -1

        def _on_step(self) -> bool:
            if self.num_timesteps == warmup:
                self.start = time.perf_counter()
                self.updates_at_start = self.model._n_updates
            return True

    model = SAC("MlpPolicy", make_env(), learning_rate=3e-4, buffer_size=BUFFER,
                learning_starts=warmup, batch_size=BATCH, tau=0.005, gamma=0.99, train_freq=1,
                gradient_steps=1, ent_coef="auto", policy_kwargs=dict(net_arch=[256, 256]),
                device="cpu", verbose=0, seed=seed)
    clock = StartClock()
    model.learn(warmup + steps, callback=clock)
    seconds = time.perf_counter() - clock.start
    assert clock.updates_at_start == 0
    return seconds, model._n_updates


def best_of(fn: Callable[[int, int, int], tuple[float, int]], warmup: int, steps: int,
            seed: int, results: list[float]) -> None:
    seconds, updates = fn(warmup, steps, seed)
    assert updates == steps, (fn.__name__, updates, steps)
    results.append(seconds)


def update_floor_ms(seed: int) -> float:
    """Milliseconds of one update if all its FLOPs ran at the dense matmul rate at the current
    thread count (the same work for both implementations: SB3 does the same matmuls)."""
    agent = Ours(BATCH, seed)
    agent.collector.collect(BATCH)
    with FlopCounterMode(display=False) as counter:
        agent.learner.train_round(1)
    return counter.get_total_flops() / (matmul_gflops() * 1e6)


def compare(threads: int, warmup: int, steps: int, repeats: int, seed: int) -> list[object]:
    torch.set_num_threads(threads)
    floor = update_floor_ms(seed)
    ours: list[float] = []
    sb3: list[float] = []
    loads = [os.getloadavg()[0]]
    for r in range(repeats):
        order = [(time_ours, ours), (time_sb3, sb3)]
        for fn, results in order if r % 2 == 0 else order[::-1]:
            best_of(fn, warmup, steps, seed + r, results)
            loads.append(os.getloadavg()[0])
            print(f"  threads {threads} repeat {r} {fn.__name__}: {steps / results[-1]:.1f} "
                  f"steps/s (1-min load average {loads[-1]:.2f})", flush=True)
    rate_ours, rate_sb3 = steps / min(ours), steps / min(sb3)
    return [threads, round(rate_ours, 1), round(rate_ours, 1), round(1e3 / rate_ours, 2),
            round(rate_sb3, 1), round(rate_sb3, 1), round(1e3 / rate_sb3, 2),
            round(rate_ours / rate_sb3, 2), round(floor, 2), round(1e3 / rate_sb3 / floor, 2),
            f"{max(loads):.1f}/{os.cpu_count()}"
            + (" (busy)" if max(loads) > threads + 0.75 else "")]


def profile(warmup: int, steps: int, seed: int, top: int) -> None:
    """cProfile of our loop over `steps` steps after the warm-up, sorted by own time."""
    agent = Ours(warmup, seed)
    agent.collector.collect(warmup)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        agent.step()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=1000, help="untimed env steps, no updates")
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps (1 update each)")
    parser.add_argument("--repeats", type=int, default=2, help="the best of these is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="only profile ours over STEPS steps (at the first --threads)")
    parser.add_argument("--top", type=int, default=8, help="rows of the profile")
    args = parser.parse_args()
    np.random.seed(args.seed)
    if args.profile:
        torch.set_num_threads(args.threads[0])
        profile(args.warmup, args.profile, args.seed, args.top)
        return
    rows = [compare(t, args.warmup, args.steps, args.repeats, args.seed) for t in args.threads]
    write_table("sb3_compare", ["threads", "ours env steps/s", "ours updates/s", "ours ms/step",
                                "SB3 env steps/s", "SB3 updates/s", "SB3 ms/step",
                                "ours/SB3", "matmul floor ms/update",
                                "ceiling ours/SB3", "max load/CPUs"], rows)


if __name__ == "__main__":
    main()
