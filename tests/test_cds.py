"""CDS (`uds_dnc --unsupervised False`): shared transitions relabelled with the learning task's own
reward. The relabelling worked out by hand on a tiny buffer, every supporting env's `reward_fn`
held to what its real `step` pays (on its own and on other tasks' transitions), the refusals
(one line, exit code 2), and a command-line run with its resume."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_FLAGS

import environments
import run
from experiment_utils import load_run_config, resolve_config
from garage_experiments import build_trainer
from learning.algorithms.learner import Learner, sharing_weights
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

ROOT = Path(__file__).resolve().parent.parent
N = 3
B = 8  # own batch; B // (N - 1) = 4 from each other task


# --- the relabelling, by hand ----------------------------------------------------------------

def _episode(task: int, steps: int) -> tuple[np.ndarray, ...]:
    """obs = (task, t), action = t / 100, reward = 10 task + t, next_obs = obs + 0.5, terminal
    on the last step."""
    t = np.arange(steps, dtype=np.float32)
    obs = np.stack([np.full_like(t, task), t], axis=1)
    return (obs, (t / 100)[:, None], 10.0 * task + t, obs + 0.5,
            (t == steps - 1).astype(np.float32), np.full(steps, task))


def _buffer(reward_info: bool = False) -> MultiTaskReplayBuffer:
    """Three tasks' episodes of 20 steps; with `reward_info`, step t of task k keeps the two
    floats (k, t) for the reward function."""
    buffer = MultiTaskReplayBuffer(N, 50, 2, 1, seed=0, reward_info_dim=2 if reward_info else 0)
    for k in range(N):
        episode = _episode(k, 20)
        buffer.add(k, *episode, reward_info=episode[0].copy() if reward_info else None)
    return buffer


def _known_reward(task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
                  reward_info: np.ndarray | None = None) -> np.ndarray:
    """A reward that tells apart the task, the observation, the action and the next one."""
    return 1000.0 * task + 100.0 * obs[:, 0] + actions[:, 0] + next_obs[:, 1]


def test_shared_rows_get_the_learners_reward_and_the_rest_is_kept() -> None:
    calls: list[int] = []

    def reward(task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
               reward_info: np.ndarray | None) -> np.ndarray:
        calls.append(task)
        assert reward_info is None  # the buffer keeps none
        return _known_reward(task, obs, actions, next_obs)

    cds = _buffer().sample_with_sharing(B, min_reward=-5.0, reward_fn=reward)
    uds = _buffer().sample_with_sharing(B, min_reward=-5.0)  # same seed: the same draws
    assert calls == list(range(N))
    for name in ("obs", "actions", "next_obs", "terminals", "task_ids"):
        torch.testing.assert_close(getattr(cds, name), getattr(uds, name), rtol=0, atol=0)
    torch.testing.assert_close(cds.rewards[:, :B], uds.rewards[:, :B], rtol=0, atol=0)
    for i in range(N):
        own, shared = cds.obs[i, :B], cds.obs[i, B:]
        assert (own[:, 0] == i).all() and (shared[:, 0] != i).all()
        step = own[:, 1]
        torch.testing.assert_close(cds.rewards[i, :B], 10.0 * i + step)  # as stored
        source, t = shared[:, 0], shared[:, 1]
        # task i's reward of (obs, action, next_obs) = 1000 i + 100 source + t / 100 + (t + 0.5)
        torch.testing.assert_close(cds.rewards[i, B:],
                                   1000.0 * i + 100.0 * source + t / 100 + t + 0.5)
        # terminals and next observations stay those the collecting task stored
        torch.testing.assert_close(cds.next_obs[i, B:], shared + 0.5)
        torch.testing.assert_close(cds.terminals[i, B:], (t == 19).float())
        assert (cds.task_ids[i] == i).all()
    assert (uds.rewards[:, B:] == -5.0).all()


def test_each_shared_rows_reward_info_reaches_the_reward_fn() -> None:
    """The floats kept with each transition arrive beside it: row i's shared part gets exactly
    the (collecting task, step) its transitions were stored with; the draws are unchanged."""
    seen: dict[int, np.ndarray] = {}

    def reward(task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
               reward_info: np.ndarray | None) -> np.ndarray:
        assert reward_info is not None and reward_info.shape == (len(obs), 2)
        seen[task] = reward_info
        return reward_info[:, 0] * 10 + reward_info[:, 1]

    batch = _buffer(reward_info=True).sample_with_sharing(B, -5.0, reward)
    plain = _buffer().sample_with_sharing(B, -5.0, _known_reward)
    torch.testing.assert_close(batch.obs, plain.obs, rtol=0, atol=0)
    for i in range(N):
        np.testing.assert_array_equal(seen[i], batch.obs[i, B:].numpy())
        torch.testing.assert_close(batch.rewards[i, B:],
                                   10 * batch.obs[i, B:, 0] + batch.obs[i, B:, 1])


def test_the_reward_info_is_kept_through_rollback_and_checkpoints() -> None:
    buffer = _buffer(reward_info=True)
    saved = buffer.reward_info.copy()
    buffer.mark()
    buffer.add(0, *_episode(0, 40), reward_info=np.full((40, 2), -1.0, dtype=np.float32))
    buffer.rollback()  # restores the filled slots (the first 20 of every task) it overwrote
    np.testing.assert_array_equal(buffer.reward_info[:, :20], saved[:, :20])
    again = MultiTaskReplayBuffer(N, 50, 2, 1, seed=0, reward_info_dim=2)
    again.load_state_dict(buffer.state_dict())
    np.testing.assert_array_equal(again.reward_info[:, :20], saved[:, :20])
    with pytest.raises(ValueError, match="checkpoint holds buffer arrays"):
        MultiTaskReplayBuffer(N, 50, 2, 1, seed=0).load_state_dict(buffer.state_dict())
    with pytest.raises(ValueError, match="reward_info must be given"):
        buffer.add(0, *_episode(0, 3))


def test_the_quantile_filter_still_applies_to_the_relabelled_batch() -> None:
    torch.manual_seed(0)
    critic = TwinCritic(Architecture.SEPARATE, N, 2, 1, [8])
    sac = MultiTaskSAC(TaskPolicy(Architecture.SEPARATE, N, 2, 1, [8]), critic, N, 1,
                       SACConfig())
    learner = Learner(sac, _buffer(), sampling="sharing", gradient_steps_per_itr=1,
                      buffer_batch_size=B, min_buffer_size=1, sharing_quantile=0.5,
                      reward_fn=_known_reward)
    batch = learner.sample()
    again = _buffer().sample_with_sharing(B, -5.0, _known_reward)
    torch.testing.assert_close(batch.rewards, again.rewards, rtol=0, atol=0)
    weights, _ = sharing_weights(critic, again, B, 0.5)
    assert batch.weights is not None
    torch.testing.assert_close(batch.weights, weights, rtol=0, atol=0)
    assert 0 < batch.weights[:, B:].sum() < batch.weights[:, B:].numel()


# --- each supporting env's reward_fn equals its step reward ------------------------------------

def _collect(env: gym.Env, steps: int, rng: np.random.Generator, *, hold: int,
             start: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(obs, actions, rewards, next_obs) of `steps` steps of persistent random actions (new
    every `hold` steps), from `start` (set after a reset) when given; resets on termination."""
    obs = env.reset(seed=int(rng.integers(1000)))[0]
    if start is not None:
        obs = _place(env, start)
    rows: list[tuple[np.ndarray, ...]] = []
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    for t in range(steps):
        if t % hold == 0:
            action = rng.uniform(-1.0, 1.0, action.shape).astype(np.float32)
        next_obs, reward, terminated, _, _ = env.step(action)
        rows.append((obs, action, np.float64(reward), next_obs))
        obs = env.reset()[0] if terminated else next_obs
    return tuple(np.stack(column) for column in zip(*rows, strict=True))


def _place(env: gym.Env, state: np.ndarray) -> np.ndarray:
    """Put the env in the state a (raw) observation shows; returns the new observation."""
    inner = env.unwrapped
    if hasattr(inner, "set_point"):  # the maze: position and velocity
        return inner.set_point(state[:2].astype(np.float64), state[2:4].astype(np.float64))
    return inner.set_position(state[:2].astype(np.float64))


def _check_family(family: environments.MultiTaskEnv, collected: dict[int, tuple[np.ndarray, ...]],
                  atol: float) -> dict[int, np.ndarray]:
    """For every collecting task j and learning task i: reward_fn(i, ...) on j's stored
    transitions (both stored layouts) equals the reward task i's real env pays for the same
    state and action; for i = j it equals what j's env paid while collecting. Returns each
    task's step rewards on all the transitions."""
    envs = family.make_task_envs(evaluation=False)
    paid: dict[int, list[np.ndarray]] = {i: [] for i in range(family.num_tasks)}
    for j, (obs, actions, rewards, next_obs) in collected.items():
        for include_task_id in (False, True):
            stored = family.split_observation(obs, include_task_id)
            stored_next = family.split_observation(next_obs, include_task_id)
            np.testing.assert_allclose(family.reward_fn(j, stored, actions, stored_next),
                                       rewards, rtol=0, atol=atol)
        for i, env in enumerate(envs):
            env.reset(seed=i)
            stepped = []
            for o, a in zip(obs, actions, strict=True):
                _place(env, o)
                stepped.append(env.step(a)[1])
            for include_task_id in (False, True):
                relabelled = family.reward_fn(i, family.split_observation(obs, include_task_id),
                                              actions,
                                              family.split_observation(next_obs, include_task_id))
                np.testing.assert_allclose(relabelled, stepped, rtol=0, atol=atol,
                                           err_msg=f"task {i} on task {j}'s transitions")
            paid[i].append(np.array(stepped))
    for env in envs:
        env.close()
    return {i: np.concatenate(r) for i, r in paid.items()}


def test_point_reach_reward_fn_is_each_tasks_step_reward() -> None:
    family = environments.make_multitask_env("PointReachMT4-v0", seed=0)
    envs = family.make_task_envs(evaluation=False)
    rng = np.random.default_rng(0)
    from environments.point_reach import GOALS

    # from near each goal (the sparse goal too) and from the arena's corner (clipped moves)
    starts = [*GOALS, np.array([1.95, -1.95])]
    collected = {j: tuple(np.concatenate(parts) for parts in zip(
        *[_collect(envs[j], 40, rng, hold=5, start=np.asarray(s, dtype=np.float64))
          for s in starts], strict=True)) for j in range(family.num_tasks)}
    paid = _check_family(family, collected, atol=1e-6)
    assert {0.0, -1.0} <= set(paid[3].tolist())  # the sparse task both pays and does not
    obs = np.concatenate([c[0] for c in collected.values()])
    assert (np.abs(obs[:, :2]) >= 2.0).any()  # some moves ran into the arena's wall


def test_maze_reward_fn_is_each_tasks_step_reward_through_wall_contacts() -> None:
    family = environments.make_multitask_env("MazeLarge-10-v0", seed=0, sparse_tasks=[3])
    from environments.maze import TASKS

    rng = np.random.default_rng(0)
    envs = family.make_task_envs(evaluation=False)
    contacts = 0
    collected = {}
    for j in (0, 5):
        env, start = envs[j], np.array([*TASKS[3][1], 0.5, 0.5]) - [0.4, 0.4, 0, 0]
        parts = [_collect(env, 120, rng, hold=10), _collect(env, 60, rng, hold=10, start=start)]
        collected[j] = tuple(np.concatenate(p) for p in zip(*parts, strict=True))
        # the same states again, to count the steps that touch a wall
        inner = env.unwrapped
        model = inner.model
        walls = {g for g in range(model.ngeom) if model.geom(g).name.startswith("wall_")}
        for o, a in zip(collected[j][0], collected[j][1], strict=True):
            _place(env, o)
            env.step(a)
            contacts += any({c.geom1, c.geom2} & walls for c in inner.data.contact)
    paid = _check_family(family, collected, atol=1e-5)
    assert contacts > 10
    assert {0.0, 1.0} <= set(paid[3].tolist())  # the sparse task 3 pays 1 near its goal
    assert (paid[0] < 0).all()  # a dense task: exp(-d) - 1


#: everything mj_step reads of a simulator (positions, velocities, warm start, controls, mocap)
_FULL_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def _jaco_transitions(env: gym.Env, rng: np.random.Generator) -> list[tuple]:
    """(physics before the step, obs, action, reward, next_obs, reward_info) of one task's steps:
    from a reset, from the hand held on each target of its sequence (so sub-goals are reached,
    bonuses paid, the stay count rises), and one simulator instability."""
    from environments.jaco import SUBGOALS, TASK_SEQUENCES, solve_hand_ik

    inner = env.unwrapped
    obs = env.reset(seed=int(rng.integers(1000)))[0]
    sequence = TASK_SEQUENCES[inner.task]
    starts = [None] + ([(inner.hand_position, 0)] if sequence is None
                       else [(SUBGOALS[g], k) for k, g in enumerate(sequence)])
    rows = []
    for start in [*starts, "unstable"]:
        if start == "unstable":
            obs = inner.set_state(inner.data.qpos, np.full(inner.model.nv, 1e12), 0)
        elif start is not None:
            q, _ = solve_hand_ik(inner.model, start[0], inner.model.qpos0)
            obs = inner.set_state(q, None, start[1])
        for _ in range(1 if start == "unstable" else 25):
            before = np.zeros(mujoco.mj_stateSize(inner.model, _FULL_STATE))
            mujoco.mj_getState(inner.model, inner.data, before, _FULL_STATE)
            action = rng.uniform(-0.3, 0.3, inner.action_space.shape).astype(np.float32)
            next_obs, reward, terminated, _, info = env.step(action)
            rows.append((before, obs, action, reward, next_obs, info["reward_info"]))
            obs = env.reset()[0] if terminated else next_obs
    return rows


@pytest.fixture
def mujoco_warnings() -> Iterator[list[str]]:
    """MuJoCo's warnings, collected instead of written to MUJOCO_LOG.TXT in the working
    directory."""
    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        yield messages
    finally:
        mujoco.set_mju_user_warning(previous)


def test_jaco_reward_fn_is_each_tasks_step_reward(mujoco_warnings: list[str]) -> None:
    """Every task's reward_fn on every task's stored transitions (hand position zeroed, as the
    buffers hold them) equals what its own env pays when put in the same physical state, stage
    and reset position and given the same action: sub-goals reached, the bonus task's bonus,
    the stay task's goal, the sparse task and an instability included."""
    from environments.jaco import INFO_RESET_HAND, OBS_STAGE

    family = environments.make_multitask_env("JacoReachMT5-v1", seed=0)
    assert family.reward_fn_problem is None and family.reward_info_dim == 11
    collecting = family.make_task_envs(evaluation=False)
    learning = family.make_task_envs(evaluation=False, seed=7)
    rng = np.random.default_rng(0)
    paid: dict[int, list[float]] = {i: [] for i in range(family.num_tasks)}
    for j, env in enumerate(collecting):
        rows = _jaco_transitions(env, rng)
        obs, actions, next_obs, info = (np.stack([r[k] for r in rows]) for k in (1, 2, 4, 5))
        stored, stored_next = family.split_observation(obs), family.split_observation(next_obs)
        assert (stored[:, 20:] == 0).all()  # the hand position is not what reward_fn reads
        np.testing.assert_allclose(family.reward_fn(j, stored, actions, stored_next, info),
                                   [r[3] for r in rows], rtol=0, atol=1e-5)
        for i, learner in enumerate(learning):
            inner = learner.unwrapped
            inner.reset(seed=i)
            stepped = []
            for before, o, a, _, _, kept in rows:
                mujoco.mj_setState(inner.model, inner.data, before, _FULL_STATE)
                inner.set_state(inner.data.qpos.copy(), inner.data.qvel.copy(),
                                int(np.argmax(o[OBS_STAGE])), reset_hand=kept[INFO_RESET_HAND])
                stepped.append(learner.step(a)[1])
            for include_task_id in (False, True):
                relabelled = family.reward_fn(i, family.split_observation(obs, include_task_id),
                                              actions,
                                              family.split_observation(next_obs, include_task_id),
                                              info)
                np.testing.assert_allclose(relabelled, stepped, rtol=0, atol=1e-5,
                                           err_msg=f"task {i} on task {j}'s transitions")
            paid[i] += stepped
    for env in (*collecting, *learning):
        env.close()
    rewards = {i: np.array(r) for i, r in paid.items()}
    assert (rewards[1] > 100).sum() >= 3  # the bonus task's sub-goal bonus, on others' data too
    for i in (0, 2):  # the time penalty drops as a relabelled transition reaches a sub-goal
        assert (rewards[i] > -0.5).any() and (rewards[i] < -0.8).any()
    sparse = rewards[3][rewards[3] != -100.0]
    assert (sparse > -1.3).all() and (sparse > -0.9).any()  # no distance term; stages reached
    assert all((r == -100.0).sum() == family.num_tasks for r in rewards.values())
    assert (rewards[4] > -0.06).any()  # the stay task on its goal
    assert any("unstable" in m for m in mujoco_warnings)


def test_jaco_success_at_the_radius_is_decided_as_the_env_decides() -> None:
    """The kept hand position is the float64 one (two float32s): hands landing within 1e-9 of
    the 0.05 radius, inside and outside (closer than float32 resolves), are paid the bonus
    exactly when the env pays it."""
    from environments.jaco import BONUS_TASK, SUBGOALS, TASK_SEQUENCES, solve_hand_ik

    family = environments.make_multitask_env("JacoReachMT5-v1", seed=0)
    env = family.make_task_envs(evaluation=False)[BONUS_TASK].unwrapped
    env.reset(seed=0)
    goal = SUBGOALS[TASK_SEQUENCES[BONUS_TASK][0]]
    q_goal, _ = solve_hand_ik(env.model, goal, env.model.qpos0)
    turn = np.zeros(env.model.nq)
    turn[0] = 0.3
    zero = np.zeros(6, dtype=np.float32)

    def step_from(s: float) -> tuple[np.ndarray, float, dict]:
        """One zero-action step from the goal pose turned by s * 0.3 rad at joint 1."""
        obs = env.set_state(q_goal + s * turn, None, 0)
        _, reward, _, _, info = env.step(zero)
        return obs, reward, info

    def beyond(s: float) -> float:
        step_from(s)
        return float(np.linalg.norm(env.hand_position - goal)) - 0.05

    inside, outside = 0.0, 1.0
    assert beyond(inside) < 0 < beyond(outside)
    while outside - inside > 1e-13:  # bisect the turn until both landings are within 1e-9
        middle = (inside + outside) / 2
        inside, outside = (middle, outside) if beyond(middle) < 0 else (inside, middle)
    paid = []
    for s_ in (inside, outside):
        assert abs(beyond(s_)) < 1e-9
        obs, reward, info = step_from(s_)
        relabelled = family.reward_fn(BONUS_TASK, family.split_observation(obs[None]),
                                      zero[None], obs[None], info["reward_info"][None])
        assert float(relabelled[0]) == pytest.approx(reward, abs=1e-6)
        paid.append(reward)
    assert paid[0] - paid[1] > 60  # the bonus was paid inside, not outside


# --- the flag's refusals ---------------------------------------------------------------------

def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("run.py: error: "), err
    return err


@pytest.mark.parametrize(("argv", "message"), [
    (["qmp_uds_dnc"], "qmp_uds_dnc is unsupervised only"),
    (["dnc_sac"], "dnc_sac shares no relabelled data"),
    (["mtsac"], "mtsac shares no relabelled data"),
    (["uds_dnc", "--env=Walker2dMT4-v0"], "Walker2dMT4-v0's reward"),
    (["uds_dnc", "--env=KitchenMTEasy-v0"], "KitchenMTEasy-v0's reward"),
    (["uds_dnc", "--env=MetaWorldCDS-v1"], "MetaWorldCDS-v1's reward"),
    (["uds_dnc", "--env=MetaWorldMT10-v2"], "MetaWorldMT10-v2's reward"),
    (["uds_dnc", "--env=MetaWorldMT50-v2"], "MetaWorldMT50-v2's reward"),
])
def test_refusals_are_one_line(argv: list[str], message: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([*argv, "--unsupervised", "False", "--log_dir", str(tmp_path / "n")]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "n").exists()


def test_every_family_either_offers_a_reward_fn_or_says_why_not() -> None:
    offering = {env_id for env_id in environments.known_env_ids()
                if environments.env_class(env_id).reward_fn_problem is None}
    assert offering == {"PointReachMT4-v0", "MazeLarge-10-v0", "JacoReachMT5-v1"}
    for env_id in offering:  # the supporting families override it
        cls = environments.env_class(env_id)
        assert cls.reward_fn is not environments.MultiTaskEnv.reward_fn


def test_the_unsupervised_default_and_the_real_command_line(tmp_path: Path) -> None:
    assert resolve_config(["uds_dnc"]).unsupervised is True
    assert resolve_config(["qmp_uds_dnc", "--unsupervised"]).unsupervised is True
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "qmp_uds_dnc",
                           "--unsupervised", "False", "--log_dir", str(tmp_path / "n")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "qmp_uds_dnc is unsupervised only" in done.stderr


# --- a real run ------------------------------------------------------------------------------

def test_a_cds_run_relabels_with_the_env_reward(tmp_path: Path) -> None:
    """Through the real builder: after training, task i's shared rows carry what task i's own
    env pays for them (PointReach), not min_reward; the own rows keep their stored rewards."""
    (tmp_path / "r").mkdir()
    config = resolve_config(["uds_dnc", "--env=PointReachMT4-v0", *TINY_FLAGS,
                             "--unsupervised", "False", "--sharing_quantile", "0.5"])
    trainer = build_trainer(config, str(tmp_path / "r"), stdout=False)
    try:
        trainer.train()
        learner = trainer.learner
        batch = learner.sample()
    finally:
        trainer.close()
    own = config.buffer_batch_size
    envs = environments.make_multitask_env("PointReachMT4-v0", seed=0).make_task_envs(
        evaluation=False)
    for i, env in enumerate(envs):
        env.reset(seed=0)
        paid = []
        for o, a in zip(batch.obs[i, own:].numpy(), batch.actions[i, own:].numpy(), strict=True):
            env.unwrapped.set_position(o.astype(np.float64))
            paid.append(env.step(a)[1])
        np.testing.assert_allclose(batch.rewards[i, own:].numpy(), paid, rtol=0, atol=1e-6)
    assert (batch.rewards[:, own:] != -1.0).any()
    assert batch.weights is not None
    assert batch.weights[:, own:].sum() < batch.weights[:, own:].numel()  # the filter ran


def test_a_jaco_cds_run_keeps_each_transitions_reward_info(tmp_path: Path) -> None:
    """Through the real builder and collector: every stored transition's kept reward_info gives
    back, through reward_fn, the reward its own task was paid for it (so the info sits beside
    its own transition, not its neighbour's); UDS runs keep none."""
    flags = ["uds_dnc", "--env=JacoReachMT5-v1", *TINY_FLAGS, "--num_evaluation_episodes", "5",
             "--n_epochs", "1", "--min_buffer_size", "200"]  # warm-up: an episode of every task
    (tmp_path / "r").mkdir()
    trainer = build_trainer(resolve_config([*flags, "--unsupervised", "False"]),
                            str(tmp_path / "r"), stdout=False)
    try:
        trainer.train()
        buffer = trainer.learner.buffer
    finally:
        trainer.close()
    family = environments.make_multitask_env("JacoReachMT5-v1", seed=0)
    assert buffer.reward_info is not None
    for j, size in enumerate(buffer.sizes.tolist()):
        assert size >= 200
        np.testing.assert_allclose(
            family.reward_fn(j, buffer.obs[j, :size], buffer.actions[j, :size],
                             buffer.next_obs[j, :size], buffer.reward_info[j, :size]),
            buffer.rewards[j, :size], rtol=0, atol=1e-5)
    (tmp_path / "u").mkdir()
    uds = build_trainer(resolve_config(flags), str(tmp_path / "u"), stdout=False)
    try:
        assert uds.learner.buffer.reward_info is None
    finally:
        uds.close()


def _rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "progress.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("Time", "ItrTime")}
                for r in csv.DictReader(f)]


@pytest.mark.parametrize("env", ["PointReachMT4-v0", "JacoReachMT5-v1"])
def test_the_command_line_runs_and_resumes_cds(env: str, tmp_path: Path) -> None:
    """`python run.py uds_dnc --unsupervised False` finishes and records the flag; a run stopped
    after epoch 2 and resumed (Jaco: its kept reward_info too) writes the progress.csv of the
    run never stopped."""
    flags = ["uds_dnc", f"--env={env}", "--unsupervised", "False", *TINY_FLAGS,
             "--num_evaluation_episodes", "5"]
    whole = tmp_path / "whole"
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *flags, "--n_epochs", "3",
                           "--log_dir", str(whole)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(_rows(whole)) == 3
    assert yaml.safe_load((whole / "config.yaml").read_text())["unsupervised"] is False
    parts = tmp_path / "parts"
    assert run.main([*flags, "--n_epochs", "2", "--log_dir", str(parts)]) == 0
    assert run.main(["resume", "--snapshot_dir", str(parts), "--n_epochs", "3"]) == 0
    assert _rows(parts) == _rows(whole)


def test_a_run_folder_from_before_the_flag_resumes_unsupervised(tmp_path: Path) -> None:
    config = resolve_config(["uds_dnc", *TINY_FLAGS])
    data = {k: v for k, v in config.to_dict().items() if k != "unsupervised"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert load_run_config(str(tmp_path)).unsupervised is True
