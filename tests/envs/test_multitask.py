"""Tests of the shared `MultiTaskEnv` family interface (environments/multitask.py)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from environments import make_multitask_env


def play_first_observations(env_id: str, seed: int, rounds: int = 2) -> np.ndarray:
    """First observation of every episode when the family plays its tasks in turn."""
    family = make_multitask_env(env_id, seed=seed)
    try:
        return np.stack([family.reset()[0] for _ in range(rounds * family.num_tasks)])
    finally:
        family.close()


@pytest.mark.parametrize("env_id", ["PointReachMT4-v0", "MazeLarge-10-v0", "Walker2dMT4-v0"])
def test_play_mode_revisits_continue_the_task_env(env_id: str) -> None:
    """Cycling through the tasks must not rebuild task k with the same seed on every visit (that
    replayed the identical episode start each round); a seeded family is still reproducible."""
    first = play_first_observations(env_id, seed=3)
    n = len(first) // 2
    for k in range(n):
        assert not np.array_equal(first[k], first[k + n]), f"task {k} replayed its reset"
    np.testing.assert_array_equal(first, play_first_observations(env_id, seed=3))
    assert not np.array_equal(first, play_first_observations(env_id, seed=4))


def test_play_mode_keeps_one_env_per_task_and_closes_them() -> None:
    """Revisiting a task reuses its env; `close()` closes every task env it built, once each."""
    family = make_multitask_env("PointReachMT4-v0", seed=0)
    build = family.make_task_env
    built: dict[int, gym.Env] = {}
    closes: dict[int, int] = {}

    def counting_build(task: int, **kwargs: Any) -> gym.Env:
        env = build(task, **kwargs)
        close = env.close

        def counting_close() -> None:
            closes[task] += 1
            close()

        env.close = counting_close
        built[task], closes[task] = env, 0
        return env

    family.make_task_env = counting_build
    family.reset(options={"task": 1})
    env_1 = family._play_env
    family.reset(options={"task": 2})
    family.reset(options={"task": 1})
    assert family._play_env is env_1 is built[1]
    assert sorted(built) == [1, 2]  # built once per task, not on the revisit
    assert closes == {1: 0, 2: 0}  # switching tasks closes nothing
    family.close()
    assert closes == {1: 1, 2: 1}
    with pytest.raises(RuntimeError):
        family.step(np.zeros(family.action_dim, dtype=np.float32))
