"""Gradient-update speed: one batched-ensemble SAC update for N tasks, on each of its two paths
(the hand-written gradients, "hand"; autograd on the losses, "autograd"), versus the same update
done as a Python loop over N independently built single-task SACs, at the paper's network and
per-task batch sizes. Two loops: "loop autograd" is the original's structure (each task's networks
updated with autograd); "loop hand" runs the hand-differentiated single-task update N times, so it
isolates what batching the tasks gains. Also the hand path's achieved GFLOP/s (FLOPs counted by
torch's FlopCounterMode) against a plain float32 matmul measured in the same run.

    python bench/update_speed.py [--threads 1 2] [--configs jaco mt10 mt50]
"""

from __future__ import annotations

import argparse

import torch
from common import matmul_gflops, median_seconds, write_table
from torch.utils.flop_counter import FlopCounterMode

from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

#: name -> (tasks, obs dim, action dim, hidden sizes, per-task batch, timed repeats)
CONFIGS = {
    "jaco": (5, 23, 6, [256, 256], 32, 50),
    "mt10": (10, 49, 4, [256, 256], 2560, 5),
    "mt50": (50, 89, 4, [400, 400], 1280, 2),
}


def make_sac(n: int, obs: int, act: int, hidden: list[int], path: str = "hand") -> MultiTaskSAC:
    policy = TaskPolicy(Architecture.SEPARATE, n, obs, act, hidden)
    critic = TwinCritic(Architecture.SEPARATE, n, obs, act, hidden)
    return MultiTaskSAC(policy, critic, n, act, SACConfig(),
                        update_path=path)  # type: ignore[arg-type]


def make_batch(n: int, obs: int, act: int, b: int) -> TransitionBatch:
    return TransitionBatch(
        obs=torch.randn(n, b, obs), actions=torch.rand(n, b, act) * 2 - 1,
        rewards=torch.randn(n, b), next_obs=torch.randn(n, b, obs),
        terminals=torch.zeros(n, b), task_ids=torch.arange(n).unsqueeze(1).expand(n, b),
    )


def bench(name: str, threads: int) -> list[object]:
    torch.set_num_threads(threads)
    n, obs, act, hidden, b, repeats = CONFIGS[name]
    batch = make_batch(n, obs, act, b)
    ours = make_sac(n, obs, act, hidden)
    ours_autograd = make_sac(n, obs, act, hidden, "autograd")
    loop = [make_sac(1, obs, act, hidden) for _ in range(n)]
    loop_ag = [make_sac(1, obs, act, hidden, "autograd") for _ in range(n)]
    slices = [TransitionBatch(batch.obs[k:k + 1], batch.actions[k:k + 1],
                              batch.rewards[k:k + 1], batch.next_obs[k:k + 1],
                              batch.terminals[k:k + 1], torch.zeros(1, b, dtype=torch.long))
              for k in range(n)]

    def loop_autograd() -> None:
        for sac, part in zip(loop_ag, slices, strict=True):
            sac.update(part)

    def loop_ours() -> None:
        for sac, part in zip(loop, slices, strict=True):
            sac.update(part)

    with FlopCounterMode(display=False) as counter:
        ours.update(batch)
    flops = counter.get_total_flops()
    t_ours = median_seconds(lambda: ours.update(batch), repeats)
    t_ours_ag = median_seconds(lambda: ours_autograd.update(batch), repeats)
    t_autograd = median_seconds(loop_autograd, repeats)
    t_loop = median_seconds(loop_ours, repeats)
    peak = matmul_gflops()
    achieved = flops / t_ours / 1e9
    return [name, n, b, "x".join(map(str, hidden)), threads, round(t_ours * 1e3, 2),
            round(t_ours_ag * 1e3, 2), f"{t_ours_ag / t_ours - 1:+.0%}",
            round(t_autograd * 1e3, 2), round(t_autograd / t_ours, 2), round(t_loop * 1e3, 2),
            round(t_loop / t_ours, 2), round(flops / 1e9, 2), round(achieved, 1),
            round(peak, 1), f"{achieved / peak:.0%}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    rows = [bench(name, t) for name in args.configs for t in args.threads]
    write_table("update_speed", ["config", "N", "batch/task", "hidden", "threads", "hand ms",
                                 "autograd ms", "autograd vs hand", "loop autograd ms",
                                 "speed-up", "loop hand ms", "speed-up vs loop hand",
                                 "GFLOP/update", "GFLOP/s", "matmul GFLOP/s", "of matmul"], rows)


if __name__ == "__main__":
    main()
