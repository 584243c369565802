"""How much two processes on the machine's two cores slow each other, both ways: the Jaco-size
batched SAC update (1 thread) timed alone and while a second process steps Jaco simulators, as
the evaluation worker does during training; and the simulators' step rate while the first process
sleeps and while it updates. The 2-core bound of `epoch_profile.py` times each part on one
core alone; this is the factor it leaves out.

Windows alternate (alone, beside, alone, ...) so that drift in the machine's speed hits both
alike. An update window is the median of its updates; a simulator window counts steps.

    python bench/interference.py [--windows 8] [--seconds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from common import write_table
from update_speed import CONFIGS, make_batch, make_sac

ENV_ID = "JacoReachMT5-v1"


def step_simulators(stop: Any, ready: Any, steps: Any = None) -> None:
    """Step 10 copies of every Jaco task (the evaluation's layout) with random actions until the
    event `stop` is set, adding the env steps taken to the shared counter `steps`."""
    import environments
    from garage_experiments import task_set_copies

    family = environments.make_multitask_env(ENV_ID, seed=0)
    envs = task_set_copies(family, 10, evaluation=True, seed=0)
    actions = np.random.default_rng(0).uniform(
        -1, 1, (64, envs[0].action_space.shape[0])).astype(np.float32)
    for env in envs:
        env.reset(seed=0)
    ready.set()
    k = 0
    while not stop.is_set():
        for env in envs:
            _, _, terminated, truncated, _ = env.step(actions[k % 64])
            if terminated or truncated:
                env.reset()
        k += 1
        if steps is not None:
            with steps.get_lock():
                steps.value += len(envs)


def window_ms(update: Callable[[], None], seconds: float) -> float:
    """Median milliseconds of one update over a window of `seconds`."""
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=8, help="windows of each kind")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one window")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, obs, act, hidden, b, _ = CONFIGS["jaco"]
    sac, batch = make_sac(n, obs, act, hidden), make_batch(n, obs, act, b)

    def update() -> None:
        sac.update(batch)

    for _ in range(20):
        update()
    ctx = mp.get_context("spawn")
    alone, beside = [], []
    for _ in range(args.windows):
        alone.append(window_ms(update, args.seconds))
        stop, ready = ctx.Event(), ctx.Event()
        worker = ctx.Process(target=step_simulators, args=(stop, ready), daemon=True)
        worker.start()
        ready.wait()
        beside.append(window_ms(update, args.seconds))
        stop.set()
        worker.join()

    stop, ready, steps = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    worker = ctx.Process(target=step_simulators, args=(stop, ready, steps), daemon=True)
    worker.start()
    ready.wait()
    sim_alone, sim_beside = [], []
    for _ in range(args.windows):
        for rates, busy in ((sim_alone, False), (sim_beside, True)):
            start, count = time.perf_counter(), steps.value
            if busy:
                window_ms(update, args.seconds)
            else:
                time.sleep(args.seconds)
            rates.append((steps.value - count) / (time.perf_counter() - start))
    stop.set()
    worker.join()

    a, s = statistics.median(alone), statistics.median(beside)
    ra, rs = statistics.median(sim_alone), statistics.median(sim_beside)
    write_table("interference", ["side", "alone (median window)", "beside the other",
                                 "slow-down"],
                [["jaco update, 1 thread (ms)", round(a, 2), round(s, 2), f"{s / a - 1:+.0%}"],
                 ["jaco simulators (env steps/s)", round(ra), round(rs), f"{ra / rs - 1:+.0%}"]])


if __name__ == "__main__":
    main()
