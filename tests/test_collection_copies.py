"""Collection with K env copies per task (`--envs_per_task`): every task gets exactly the steps a
round asks for, the buffer stores each copy's trajectory in order, and episode statistics and
mixture counts stay per task."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import environments
from garage_experiments import task_set_copies
from learning.behaviour import OwnPolicy, QSwitch
from learning.replay_buffer import MultiTaskReplayBuffer
from learning.sampler import Collector, TaskVectorEnv
from learning.task_networks import Architecture, TaskPolicy, TwinCritic

ENV = "PointReachMT4-v0"


def test_adding_k_copies_equals_k_single_adds_across_the_wrap() -> None:
    rng = np.random.default_rng(0)
    n, k, cap = 3, 4, 10
    one, many = (MultiTaskReplayBuffer(n, cap, 2, 1, seed=0) for _ in range(2))
    for _ in range(4):  # 16 entries into 10 slots: the third add wraps around
        obs, nxt = rng.normal(size=(2, k, n, 2)).astype(np.float32)
        act = rng.normal(size=(k, n, 1)).astype(np.float32)
        rew = rng.normal(size=(k, n)).astype(np.float32)
        term = rng.random((k, n)) < 0.3
        acting = rng.integers(0, n, (k, n))
        many.add(obs, act, rew, nxt, term, acting)
        for c in range(k):
            one.add(obs[c], act[c], rew[c], nxt[c], term[c], acting[c])
    assert (many.ptr, many.size) == (one.ptr, one.size) == (6, 10)
    for name in MultiTaskReplayBuffer._ARRAYS:
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name))


def _collector(copies: int, qmp: bool) -> Collector:
    torch.manual_seed(0)
    family = environments.make_multitask_env(ENV, seed=0)
    n, d, a = family.num_tasks, family.network_obs_dim(), family.action_dim
    policy = TaskPolicy(Architecture.SEPARATE, n, d, a, [16, 16])
    behaviour = QSwitch(policy, TwinCritic(Architecture.SEPARATE, n, d, a, [16, 16])) if qmp \
        else OwnPolicy(policy)
    envs = task_set_copies(family, copies, evaluation=False, seed=0)
    return Collector(TaskVectorEnv(envs, family.horizon, seed=0), behaviour,
                     MultiTaskReplayBuffer(n, 1000, d, a, seed=0),
                     functools.partial(family.split_observation), discount=0.99,
                     info_metrics=family.episode_info_metrics)


@pytest.mark.parametrize("qmp", [False, True])
def test_every_task_gets_the_steps_asked_for_and_trajectories_chain(qmp: bool) -> None:
    k = 3
    collector = _collector(k, qmp)
    n, horizon = collector.num_tasks, collector.venv.horizon
    collector.collect(70)  # 23 full lockstep steps, then one step of the first copy
    collector.collect(35)  # 11 full, then copies 0 and 1
    buffer = collector.buffer
    assert len(buffer) == 105 and collector.total_env_steps == 105 * n
    counts = collector.reset_counts()
    np.testing.assert_array_equal(counts.sum(1), np.full(n, 105))
    if not qmp:
        np.testing.assert_array_equal(counts, np.diag(np.full(n, 105)))
    # copy c's transitions are entries in the order they were stored; next_obs of one step is
    # the obs of that copy's next step unless the episode reached the horizon in between
    order = [list(range(c, 69, k)) + [69] * (c == 0) for c in range(k)]  # round 1
    order = [o + [70 + x for x in range(c, 33, k)] + [70 + 33 + c] * (c < 2)
             for c, o in enumerate(order)]  # round 2: entries 70..104
    assert sorted(sum(order, [])) == list(range(105))
    steps_per_copy = [len(o) for o in order]
    assert steps_per_copy == [36, 35, 34]
    for c, entries in enumerate(order):
        for t, (e0, e1) in enumerate(zip(entries, entries[1:], strict=False)):
            if (t + 1) % horizon:
                np.testing.assert_array_equal(buffer.next_obs[:, e0], buffer.obs[:, e1])
        # the env's own step counter agrees (no episode ended: 36 steps < horizon 50)
        np.testing.assert_array_equal(
            collector.venv.steps_in_episode[c * n:(c + 1) * n], steps_per_copy[c])
    assert not collector.tracker.pop_finished()


def test_episodes_finish_per_copy_and_carry_their_task() -> None:
    collector = _collector(2, qmp=True)
    n, horizon = collector.num_tasks, collector.venv.horizon
    collector.collect(2 * horizon)  # every copy runs exactly one whole episode
    episodes = collector.tracker.pop_finished()
    assert sorted(e.task for e in episodes) == sorted(list(range(n)) * 2)
    assert all(e.length == horizon for e in episodes)
    assert (collector.venv.steps_in_episode == 0).all()


def test_stored_observations_are_not_overwritten_by_the_next_step() -> None:
    """With the task id kept (an identity observation split) the network input is the vector
    env's own observation array: stepping must not write the next observations into it."""
    family = environments.make_multitask_env(ENV, seed=0)
    n, d, a = family.num_tasks, family.obs_dim, family.action_dim
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.SHARED, n, d, a, [16, 16])
    collector = Collector(TaskVectorEnv(task_set_copies(family, 1, evaluation=False, seed=0),
                                        family.horizon, seed=0),
                          OwnPolicy(policy), MultiTaskReplayBuffer(n, 100, d, a, seed=0),
                          functools.partial(family.split_observation, include_task_id=True),
                          discount=0.99, info_metrics={})
    first = collector.venv.obs.copy()
    collector.collect(10)
    buffer = collector.buffer
    np.testing.assert_array_equal(buffer.obs[:, 0], first)
    np.testing.assert_array_equal(buffer.next_obs[:, :9], buffer.obs[:, 1:10])
    assert (buffer.obs[:, :10] != buffer.next_obs[:, :10]).any(axis=-1).all()
