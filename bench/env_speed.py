"""Environment speed: random-action env steps per second for every benchmark.

For each env: one task env stepped alone, and all N task envs stepped in lockstep by the project's
`TaskVectorEnv` (the simulator-bound limit of collection). Actions are drawn in advance so the
random number generator is not timed. Prints a markdown table and writes it under bench/results/.

    python bench/env_speed.py [--envs ID ...] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import environments  # noqa: E402
from learning.samplers.sampler import TaskVectorEnv  # noqa: E402


def single_env_rate(env, horizon: int, seconds: float, rng: np.random.Generator) -> float:
    actions = rng.uniform(-1, 1, size=(4096, env.action_space.shape[0])).astype(np.float32)
    env.reset(seed=0)
    steps, t, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions[:256]:
            _, _, term, trunc, _ = env.step(a)
            steps += 1
            t += 1
            if term or trunc or t >= horizon:
                env.reset()
                t = 0
    return steps / (time.perf_counter() - start)


def vector_rate(venv: TaskVectorEnv, action_dim: int, seconds: float,
                rng: np.random.Generator) -> float:
    n = venv.num_envs
    actions = rng.uniform(-1, 1, size=(64, n, action_dim)).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions:
            venv.step(a)
            steps += n
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=environments.known_env_ids())
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for env_id in args.envs:
        t0 = time.perf_counter()
        family = environments.make_multitask_env(env_id, seed=0)
        envs = family.make_task_envs(evaluation=False)
        build = time.perf_counter() - t0
        single = single_env_rate(envs[0], family.horizon, args.seconds, rng)
        venv = TaskVectorEnv(envs, family.horizon, seed=0)
        lockstep = vector_rate(venv, family.action_dim, args.seconds, rng)
        venv.close()
        rows.append((env_id, family.num_tasks, family.obs_dim, family.network_obs_dim(),
                     family.action_dim, family.horizon, single, lockstep, build))
        print(f"{env_id}: {single:,.0f} steps/s alone, {lockstep:,.0f} in lockstep", flush=True)
    header = ("| env | tasks | obs | net input | action | horizon | steps/s (task 0 alone) | "
              "steps/s (all N, lockstep) | build s |\n|---|---|---|---|---|---|---|---|---|")
    lines = [header] + [
        f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:,.0f} | {r[7]:,.0f} "
        f"| {r[8]:.1f} |" for r in rows
    ]
    table = "\n".join(lines)
    print(table)
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "env_speed.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
