"""Collection allocates a round's env steps exactly as the original's sequential samplers did.

The lockstep collector (N tasks, K env copies per task, one policy call a step) is compared with
a plain sequential reference of garage's LocalSampler ("local": one whole episode per task in
task order, cycling from task 0, until the round has `num_steps`) and the original's
MTLocalSampler ("mt_local": every task whole episodes until it has `num_steps / N`), on scripted
envs whose episode lengths are drawn at random: the same episodes are stored, in the same order,
and nothing else (episodes the sequential sampler would not have started are dropped). Some
scripted episodes outlast the horizon: the horizon cuts them, and only genuine terminations are
stored as terminal (a time-out is bootstrapped)."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import environments
from garage_experiments import task_set_copies
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.nn.heads import Architecture
from learning.policies.behaviour import OwnPolicy
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic
from learning.samplers.sampler import Collector, TaskVectorEnv

HORIZON = 12


class ScriptedEpisodes(gym.Env):
    """Episode e of this env terminates after lengths[e] steps unless the horizon cuts it first
    (with HORIZON: lengths above it never terminate). Observation: (sequential episode id, step
    in the episode); the step info's reward_info is the observation the step started from."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, lengths: list[int], ids: list[int]) -> None:
        self.lengths, self.ids, self.episode, self.t = lengths, ids, -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.ids[self.episode], self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        before = self._obs()
        self.t += 1
        return (self._obs(), 0.0, self.t >= self.lengths[self.episode], False,
                {"reward_info": before})


def played(length: int) -> int:
    """Steps an episode scripted to last `length` runs: the horizon cuts longer ones."""
    return min(length, HORIZON)


def sequential_reference(lengths: list[list[int]], num_steps: int, sampler: str
                         ) -> list[tuple[int, int]]:
    """(task, episode index j of the task) of every episode the original stores, in order."""
    n = len(lengths)
    done, used, order = np.zeros(n, dtype=np.int64), [0] * n, []

    def run(task: int) -> None:
        done[task] += played(lengths[task][used[task]])
        order.append((task, used[task]))
        used[task] += 1

    if sampler == "local":
        while done.sum() < num_steps:
            for task in range(n):
                run(task)
                if done.sum() >= num_steps:
                    break
    else:
        for task in range(n):
            while done[task] < num_steps / n:
                run(task)
    return order


def _scripted_collector(lengths: list[list[int]], copies: int, sampler: str, shared: bool
                        ) -> Collector:
    """Copy c of task i runs the task's episodes c, c + K, c + 2K, ... (the pass order)."""
    n = len(lengths)
    envs = [ScriptedEpisodes(lengths[i][c::copies], [i * 1000 + j for j in
                                                      range(c, len(lengths[i]), copies)])
            for c in range(copies) for i in range(n)]
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.SEPARATE, n, 2, 1, [8])
    return Collector(TaskVectorEnv(envs, HORIZON, seed=0), OwnPolicy(policy),
                     MultiTaskReplayBuffer(n, 10_000, 2, 1, seed=0, shared=shared,
                                           reward_info_dim=2),
                     lambda obs: obs, discount=0.99, info_metrics={}, sampler_type=sampler)


def _stored_episodes(buffer: MultiTaskReplayBuffer, lengths: list[list[int]]
                     ) -> list[list[tuple[int, int]]]:
    """Per buffer group, the (task, j) of its stored episodes in storage order, checking that
    each is stored whole (steps 0..L-1 in order) and that its terminal flags are 0 ... 0 1 when
    the script terminated it and all 0 when the horizon cut it. Every transition keeps the
    reward_info its own step returned."""
    out = []
    for g, size in enumerate(buffer.sizes.tolist()):
        assert buffer.reward_info is not None
        np.testing.assert_array_equal(buffer.reward_info[g, :size], buffer.obs[g, :size])
        ids, steps = buffer.obs[g, :size, 0].astype(int), buffer.obs[g, :size, 1].astype(int)
        starts = np.flatnonzero(steps == 0)
        episodes = []
        for a, b in zip(starts, [*starts[1:], size][: len(starts)], strict=True):
            assert (steps[a:b] == np.arange(b - a)).all() and (ids[a:b] == ids[a]).all()
            assert (buffer.task[g, a:b] == ids[a] // 1000).all()
            task, j = int(ids[a] // 1000), int(ids[a] % 1000)
            terminal = lengths[task][j] <= HORIZON
            assert buffer.terminals[g, a:b].tolist() == [0.0] * (b - a - 1) + [float(terminal)]
            episodes.append((task, j))
        out.append(episodes)
    return out


@pytest.mark.parametrize("sampler", ["local", "mt_local"])
@pytest.mark.parametrize("copies", [1, 2, 3])
@pytest.mark.parametrize("shared", [False, True])
def test_allocation_equals_the_sequential_sampler(sampler: str, copies: int,
                                                  shared: bool) -> None:
    rng = np.random.default_rng(copies + 10 * shared + 100 * (sampler == "local"))
    for trial in range(25):
        n = int(rng.integers(1, 5))
        lengths = [rng.integers(1, HORIZON + 4, size=200).tolist() for _ in range(n)]
        num_steps = int(rng.integers(1, 6 * HORIZON * n))
        collector = _scripted_collector(lengths, copies, sampler, shared)
        samples = collector.collect(num_steps)
        expected = sequential_reference(lengths, num_steps, sampler)
        per_task = np.bincount([t for t, _ in expected],
                               weights=[played(lengths[t][j]) for t, j in expected],
                               minlength=n).astype(int)
        np.testing.assert_array_equal(samples, per_task, err_msg=f"trial {trial}")
        assert collector.total_env_steps == per_task.sum()
        stored = _stored_episodes(collector.buffer, lengths)
        if shared:  # one FIFO: the sequential order itself
            assert stored == [expected]
        else:
            assert stored == [[e for e in expected if e[0] == i] for i in range(n)]
        episodes = collector.pop_episodes()
        assert [(e.task, e.length, e.terminated) for e in episodes] == [
            (t, played(lengths[t][j]), lengths[t][j] <= HORIZON) for t, j in expected]
        np.testing.assert_array_equal(collector.reset_counts().sum(1), per_task)


class ScriptedActing:
    """Zero actions; the acting policy of copy c of task i at step t of its episode is
    (i + t + c) % N, a different id for every row and step."""

    def act(self, obs: torch.Tensor, steps_in_episode: np.ndarray, deterministic: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
        k, n, _ = obs.shape
        rows = np.arange(n)[None, :] + np.arange(k)[:, None]
        return np.zeros((k, n, 1), np.float32), (rows + steps_in_episode) % n


def test_acting_policy_ids_are_stored_and_counted_per_step() -> None:
    """The buffer's acting_policy of each stored step is the id the behaviour returned for that
    row at that step, and the mixture counts tally those ids (row: task, column: policy)."""
    n, copies = 3, 2
    lengths = [[5, 3, 7, 2] * 3, [4, 6, 1, 8] * 3, [2, 2, 9, 3] * 3]
    collector = _scripted_collector(lengths, copies, "local", False)
    collector.behaviour = ScriptedActing()
    samples = collector.collect(40)
    buffer = collector.buffer
    expected_counts = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        ids = buffer.obs[i, : samples[i], 0].astype(int) % 1000
        steps = buffer.obs[i, : samples[i], 1].astype(int)
        expected = (i + steps + ids % copies) % n  # episode j runs on copy j % K
        np.testing.assert_array_equal(buffer.acting_policy[i, : samples[i]], expected)
        expected_counts[i] = np.bincount(expected, minlength=n)
    assert (expected_counts > 0).all()  # every (task, policy) pair occurs
    np.testing.assert_array_equal(collector.reset_counts(), expected_counts)


def test_kitchen_like_round_gives_low_index_tasks_an_extra_episode() -> None:
    """batch_size / N above the horizon (Kitchen: 200 vs 140): under `local` tasks 0..4 of 10
    get a second episode every round; under `mt_local` every task gets two."""
    n, horizon = 10, 140
    lengths = [[horizon] * 10 for _ in range(n)]
    for sampler, expected in (("local", [280] * 5 + [140] * 5), ("mt_local", [280] * n)):
        collector = _scripted_collector(lengths, 1, sampler, False)
        collector.venv.horizon = horizon
        collector._stage = None
        assert collector.collect(2000).tolist() == expected


def _collector(copies: int, qmp: bool, sampler: str = "local") -> Collector:
    torch.manual_seed(0)
    family = environments.make_multitask_env("PointReachMT4-v0", seed=0)
    n, d, a = family.num_tasks, family.network_obs_dim(), family.action_dim
    policy = TaskPolicy(Architecture.SEPARATE, n, d, a, [16, 16])
    behaviour = QSwitch(policy, TwinCritic(Architecture.SEPARATE, n, d, a, [16, 16])) if qmp \
        else OwnPolicy(policy)
    envs = task_set_copies(family, copies, evaluation=False, seed=0)
    return Collector(TaskVectorEnv(envs, family.horizon, seed=0), behaviour,
                     MultiTaskReplayBuffer(n, 1000, d, a, seed=0),
                     functools.partial(family.split_observation), discount=0.99,
                     info_metrics=family.episode_info_metrics, sampler_type=sampler)


class _RecordingActs:
    """Wraps a behaviour: keeps the `deterministic` flag and the actions of every call."""

    def __init__(self, behaviour: OwnPolicy | QSwitch) -> None:
        self.behaviour, self.flags, self.actions = behaviour, [], []

    def act(self, obs: torch.Tensor, steps_in_episode: np.ndarray, deterministic: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
        actions, acting = self.behaviour.act(obs, steps_in_episode, deterministic)
        self.flags.append(deterministic)
        self.actions.append(actions.copy())
        return actions, acting


@pytest.mark.parametrize("qmp", [False, True])
def test_collection_samples_actions_and_stores_the_executed_ones(qmp: bool) -> None:
    """Training data is collected with sampled (not mean) actions, and the buffer stores
    exactly the (R, N, A) action each row executed, A = 2 on PointReach."""
    collector = _collector(1, qmp)
    recorder = _RecordingActs(collector.behaviour)  # type: ignore[arg-type]
    collector.behaviour = recorder  # type: ignore[assignment]
    samples = collector.collect(4 * 50)  # one 50-step episode per task
    assert samples.tolist() == [50] * 4 and set(recorder.flags) == {False}
    executed = np.stack(recorder.actions)[:, 0]  # (steps, N, A)
    assert executed.shape == (50, 4, 2)
    for i in range(4):
        np.testing.assert_array_equal(collector.buffer.actions[i, :50], executed[:, i])
    mean_actions = [collector.behaviour.behaviour.act(  # type: ignore[attr-defined]
        torch.from_numpy(collector.buffer.obs[:, :1].transpose(1, 0, 2)), np.zeros((1, 4)),
        True)[0][0]]
    assert not np.allclose(mean_actions[0], executed[0])  # sampled, not the squashed mean


@pytest.mark.parametrize("qmp", [False, True])
def test_real_env_rounds_store_whole_chained_episodes(qmp: bool) -> None:
    """PointReach episodes never terminate (horizon 50): a 700-step round under `local` with 2
    copies runs 14 episodes (3 cycles of 4 tasks, then tasks 0 and 1); trajectories chain step
    to step, no step is stored as terminal (the time-outs at steps 49, 99, ... included) and
    every round starts fresh episodes."""
    collector = _collector(2, qmp)
    n, horizon = collector.num_tasks, collector.venv.horizon
    samples = collector.collect(700)
    assert samples.tolist() == [200, 200, 150, 150]
    buffer = collector.buffer
    for i in range(n):
        obs, nxt = buffer.obs[i, : samples[i]], buffer.next_obs[i, : samples[i]]
        for e in range(samples[i] // horizon):
            episode = slice(e * horizon, (e + 1) * horizon)
            np.testing.assert_array_equal(nxt[episode][:-1], obs[episode][1:])
        assert not buffer.terminals[i, : samples[i]].any()
    counts = collector.reset_counts()
    np.testing.assert_array_equal(counts.sum(1), samples)
    if not qmp:
        np.testing.assert_array_equal(counts, np.diag(samples))
    episodes = collector.pop_episodes()
    assert [e.task for e in episodes] == [0, 1, 2, 3] * 3 + [0, 1]
    assert [(e.length, e.terminated) for e in episodes] == [(horizon, False)] * 14
    assert collector.collect(1).tolist() == [horizon] + [0] * (n - 1)  # one episode: task 0
    # the other rows took one step before the first one's showed the round complete: dropped
    assert collector.venv.steps_in_episode.tolist() == [0] + [1] * (2 * n - 1)
    assert collector.collect(n * horizon).tolist() == [horizon] * n  # fresh episodes
    for i, size in enumerate(buffer.sizes.tolist()):  # the new episode is stored whole
        last = slice(size - horizon, size)
        np.testing.assert_array_equal(buffer.next_obs[i, last][:-1], buffer.obs[i, last][1:])
        assert not buffer.terminals[i, :size].any()


def test_stored_observations_are_not_overwritten_by_the_next_step() -> None:
    """With the task id kept (an identity observation split) the network input is the vector
    env's own observation array: stepping must not write the next observations into it."""
    family = environments.make_multitask_env("PointReachMT4-v0", seed=0)
    n, d, a = family.num_tasks, family.obs_dim, family.action_dim
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.SHARED, n, d, a, [16, 16])
    collector = Collector(TaskVectorEnv(task_set_copies(family, 1, evaluation=False, seed=0),
                                        family.horizon, seed=0),
                          OwnPolicy(policy), MultiTaskReplayBuffer(n, 100, d, a, seed=0),
                          functools.partial(family.split_observation, include_task_id=True),
                          discount=0.99, info_metrics={})
    first = collector.venv.obs.copy()
    collector.collect(n * family.horizon)
    buffer = collector.buffer
    np.testing.assert_array_equal(buffer.obs[:, 0], first)
    np.testing.assert_array_equal(buffer.next_obs[:, :9], buffer.obs[:, 1:10])
    assert (buffer.obs[:, :10] != buffer.next_obs[:, :10]).any(axis=-1).all()
