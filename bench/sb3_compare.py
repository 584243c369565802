"""Single-task SAC throughput: this project's SAC (the multi-task pieces with N = 1) against
Stable-Baselines3's SAC on gymnasium Walker2d-v5, both on the CPU with the same settings: (256, 256)
actor and twin critics, batch 256, one gradient update per env step, automatic temperature.

Protocol, the same for both and for every torch thread count. Both agents live in this one
process and are timed in alternation, so that the machine's drifting speed (5-10% here within
minutes) hits both alike:
* build both agents, then W warm-up env steps each without updates (not timed): SB3
  (learning_starts=W) acts uniformly at random for exactly W steps; ours (min_buffer_size=W)
  acts with its untrained policy, in whole episodes until it has at least W steps; then one
  untimed chunk each (first updates: lazy state, allocations);
* R rounds; in each, time a chunk of about C env steps with one gradient update per env step,
  for each agent (which goes first alternates). SB3's chunk is `learn(C, reset_num_timesteps=
  False)`: C steps, each followed by one update. Ours collects as its training loop does, in
  rounds of whole episodes: `collector.collect(1)` runs one episode of E steps, then
  `learner.train_round` runs E updates (the per-round gradient budget set to E), repeated until
  the chunk has at least C env steps (at most C + 999). Both count the env steps and updates
  they actually did, and every chunk is checked to have done one update per env step;
* each rate is the median over chunks of env steps (= updates) per second; ours/SB3 is the
  median over rounds of the round's ratio of rates, with its range over rounds.

Both get `gymnasium.make("Walker2d-v5", disable_env_checker=True)`: SB3 as is (its TimeLimit ends
episodes at 1000 steps; SB3 adds its Monitor and DummyVecEnv), ours `.unwrapped` as the project's
env families do (TaskVectorEnv ends episodes at the 1000-step horizon itself). Both run in this
one process, so both get the runtime settings that importing `common` applies. The last column is
the highest 1-minute load average seen during the row (it counts this benchmark's own threads):
"busy" marks a row where other processes were running too, which slows both, and with 2 threads
on a 2-core machine can slow either by 10x: rerun such rows.

Stable-Baselines3 is a benchmark-only dependency: pip install -r bench/requirements.txt

    python bench/sb3_compare.py [--threads 1 2] [--warmup 1000] [--chunk 250] [--rounds 8]
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
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from common import matmul_gflops, write_table
from torch.utils.flop_counter import FlopCounterMode

from learning.algorithms.learner import Learner
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.nn.heads import Architecture
from learning.policies.behaviour import OwnPolicy
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic
from learning.samplers.sampler import Collector, TaskVectorEnv

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

    def step(self) -> int:
        """One whole episode, then as many gradient updates as it had env steps (once the
        warm-up is over); returns its env steps."""
        samples = self.collector.collect(1)  # a round of at least 1 step: one episode
        steps = int(samples.sum())
        self.learner.gradient_steps_per_itr = steps  # N = 1: the task gets the whole budget
        self.learner.train_round(samples)
        return steps

    @property
    def updates(self) -> int:
        return self.learner.gradient_steps


class Sb3:
    """Stable-Baselines3's SAC with the same settings, stepped in chunks of `learn` calls."""

    def __init__(self, warmup: int, seed: int) -> None:
        from stable_baselines3 import SAC

        self.model = SAC("MlpPolicy", make_env(), learning_rate=3e-4, buffer_size=BUFFER,
                         learning_starts=warmup, batch_size=BATCH, tau=0.005, gamma=0.99,
                         train_freq=1, gradient_steps=1, ent_coef="auto",
                         policy_kwargs=dict(net_arch=HIDDEN), device="cpu", verbose=0,
                         seed=seed)
        self.model.learn(warmup)  # SB3 trains only once num_timesteps > learning_starts
        assert self.model._n_updates == 0

    def run(self, steps: int) -> int:
        before = self.model._n_updates
        self.model.learn(steps, reset_num_timesteps=False)
        assert self.model._n_updates - before == steps
        return steps


def warmed_ours(warmup: int, seed: int) -> Ours:
    agent = Ours(warmup, seed)
    agent.collector.collect(warmup)  # the warm-up round (whole episodes), as the trainer runs it
    assert agent.updates == 0 and not agent.learner.warming_up()
    return agent


def run_ours(agent: Ours, steps: int) -> int:
    """Whole episodes, each followed by its updates, until at least `steps` env steps; returns
    the env steps done (= the updates done)."""
    before, done = agent.updates, 0
    while done < steps:
        done += agent.step()
    assert agent.updates - before == done
    return done


def update_floor_ms(seed: int) -> float:
    """Milliseconds of one update if all its FLOPs ran at the dense matmul rate at the current
    thread count (the same work for both implementations: SB3 does the same matmuls)."""
    agent = Ours(BATCH, seed)
    samples = agent.collector.collect(BATCH)
    agent.learner.gradient_steps_per_itr = 1
    with FlopCounterMode(display=False) as counter:
        agent.learner.train_round(samples)
    assert agent.updates == 1
    return counter.get_total_flops() / (matmul_gflops() * 1e6)


def compare(threads: int, warmup: int, chunk: int, rounds: int, seed: int) -> list[object]:
    torch.set_num_threads(threads)
    floor = update_floor_ms(seed)
    ours, sb3 = warmed_ours(warmup, seed), Sb3(warmup, seed)
    runners: list[tuple[str, Callable[[int], int]]] = [
        ("ours", lambda steps: run_ours(ours, steps)), ("SB3", sb3.run)]
    for _, run in runners:
        run(chunk)  # untimed: the first updates
    rates: dict[str, list[float]] = {"ours": [], "SB3": []}  # env steps (= updates) per second
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        for name, run in runners if r % 2 == 0 else runners[::-1]:
            start = time.perf_counter()
            done = run(chunk)
            rates[name].append(done / (time.perf_counter() - start))
        loads.append(os.getloadavg()[0])
        ratio = rates["ours"][-1] / rates["SB3"][-1]
        print(f"  threads {threads} round {r}: ours {rates['ours'][-1]:.1f}, SB3 "
              f"{rates['SB3'][-1]:.1f} steps/s, ratio {ratio:.2f} (1-min load average "
              f"{loads[-1]:.2f})", flush=True)
    ratios = [o / s for o, s in zip(rates["ours"], rates["SB3"], strict=True)]
    rate_ours = statistics.median(rates["ours"])
    rate_sb3 = statistics.median(rates["SB3"])
    return [threads, round(rate_ours, 1), round(1e3 / rate_ours, 2), round(rate_sb3, 1),
            round(1e3 / rate_sb3, 2), round(statistics.median(ratios), 2),
            f"{min(ratios):.2f}-{max(ratios):.2f}", round(floor, 2),
            round(1e3 / rate_sb3 / floor, 2),
            f"{max(loads):.1f}/{os.cpu_count()}"
            + (" (busy)" if max(loads) > threads + 0.75 else "")]


def profile(warmup: int, steps: int, seed: int, top: int) -> None:
    """cProfile of our loop over at least `steps` env steps (whole episodes, one update per
    step) after the warm-up, sorted by own time."""
    agent = warmed_ours(warmup, seed)
    profiler = cProfile.Profile()
    profiler.enable()
    done = run_ours(agent, steps)
    profiler.disable()
    print(f"{done} env steps and updates")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=1000, help="untimed env steps, no updates")
    parser.add_argument("--chunk", type=int, default=250,
                        help="env steps (1 update each) per timed chunk (ours: at least)")
    parser.add_argument("--rounds", type=int, default=8,
                        help="timed chunks per agent, in alternation")
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
    rows = [compare(t, args.warmup, args.chunk, args.rounds, args.seed) for t in args.threads]
    write_table("sb3_compare", ["threads", "ours steps/s", "ours ms/step", "SB3 steps/s",
                                "SB3 ms/step", "ours/SB3 (median round)", "ours/SB3 range",
                                "matmul floor ms/update", "ceiling ours/SB3", "max load/CPUs"],
                rows)


if __name__ == "__main__":
    main()
