"""Tests of Walker2dMT4-v0: model facts, spaces, rewards on set states, terminations, success."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported

import mujoco
import numpy as np
import pytest

from environments.walker import HORIZON, Walker2dMT4Env, WalkerTaskEnv
from experiment_utils import env_config

FORWARD, BACKWARD, BALANCE, CRAWL = range(4)
DT = 0.008


@pytest.fixture(scope="module")
def family() -> Walker2dMT4Env:
    return Walker2dMT4Env(seed=0)


def standing_state(env: WalkerTaskEnv) -> tuple[np.ndarray, np.ndarray]:
    """The model's reference pose: upright, feet on the floor, at rest."""
    return env.model.qpos0.copy(), np.zeros(env.model.nv)


def airborne_state(env: WalkerTaskEnv, vx: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Upright, lifted clear of the floor, moving along x with spinning feet."""
    qpos, qvel = standing_state(env)
    qpos[0] = -3.0  # well before the crawl ceiling (x in [2, 14])
    qpos[1] = 1.6
    qpos[2] = 0.2
    qvel[0] = vx
    qvel[5] = 1.5
    qvel[8] = -0.5
    return qpos, qvel


def independent_delta_h(model: mujoco.MjModel, qpos: np.ndarray) -> float:
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    z = {name: data.body(name).xpos[2] for name in ("torso", "foot", "foot_left")}
    return float(z["torso"] - max(z["foot"], z["foot_left"]))


def spec_reward(task: int, v: float, angle: float, dh: float, foot: float, a, hit: bool) -> float:
    """The original's reward formulas, written out task by task."""
    ctrl = -0.001 * float(np.sum(np.square(a)))
    if task == FORWARD:
        return (3 - abs(v - 3)) + 0.1 * np.cos(angle) - abs(1.1 - dh) + ctrl + 1 - 0.01 * foot
    if task == BACKWARD:
        return (3 - abs(-v - 3)) + 0.1 * np.cos(angle) - abs(1.1 - dh) + ctrl + 1 - 0.01 * foot
    if task == BALANCE:
        return -abs(v) + 0.1 * np.cos(angle) - 0.5 * abs(1.1 - dh) + ctrl + 1
    return 2 * (3 - abs(v - 3)) + 0.1 * np.cos(angle) + ctrl + 1 - 0.01 * foot - 10 * hit


# ------------------------------------------------------------------------------ construction
def test_family_attributes(family: Walker2dMT4Env) -> None:
    assert family.task_names == ("forward", "backward", "balance", "crawl")
    assert family.num_tasks == 4
    assert family.horizon == 1000
    assert family.min_reward == 0.0
    assert family.onehot_mode == "zero"
    assert family.episode_info_metrics == {"x_velocity": ("Velocity", "mean")}
    hp = env_config("Walker2dMT4-v0")[0]
    assert hp["n_epochs"] == 2000 and hp["batch_size"] == 4000 and hp["steps_per_epoch"] == 1
    assert hp["gradient_steps_per_itr"] == 6000 and hp["buffer_batch_size"] == 32
    assert hp["min_buffer_size"] == 10000 and hp["lr"] == 3e-4
    assert hp["hidden_sizes"] == [256, 256] and hp["num_evaluation_episodes"] == 40


def test_spaces_and_dimensions(family: Walker2dMT4Env) -> None:
    assert family.observation_space.shape == (21,)
    assert family.observation_space.dtype == np.float32
    assert family.action_space.shape == (6,)
    assert np.all(family.action_space.low == -1) and np.all(family.action_space.high == 1)
    assert family.obs_dim == 21 and family.action_dim == 6
    assert family.onehot_start == 17
    assert family.network_obs_dim() == 21


def test_model_facts() -> None:
    plain = WalkerTaskEnv(FORWARD, seed=0)
    crawl = WalkerTaskEnv(CRAWL, seed=0)
    for env in (plain, crawl):
        m = env.model
        assert m.opt.timestep == pytest.approx(0.002)
        assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        assert env.dt == pytest.approx(DT)
        assert (m.nq, m.nv, m.nu) == (9, 9, 6)
        np.testing.assert_allclose(m.actuator_gear[:, 0], 100.0)
        np.testing.assert_allclose(m.actuator_ctrlrange, [[-1.0, 1.0]] * 6)
        assert m.geom("foot_left_geom").friction[0] == pytest.approx(1.9)
        assert m.geom("foot_geom").friction[0] == pytest.approx(0.9)
    with pytest.raises(KeyError):
        plain.model.geom("ceiling")
    ceiling = crawl.model.geom("ceiling")
    np.testing.assert_allclose(ceiling.size, [6.0, 2.0, 0.1])
    np.testing.assert_allclose(ceiling.pos, [8.0, 0.0, 1.0])


def test_observation_layout_and_onehot(family: Walker2dMT4Env) -> None:
    envs = family.make_task_envs(evaluation=False)
    for k, env in enumerate(envs):
        obs, info = env.reset(seed=k)
        assert obs.shape == (21,) and obs.dtype == np.float32
        assert info["task_id"] == k
        np.testing.assert_array_equal(obs[17:], np.eye(4, dtype=np.float32)[k])
        np.testing.assert_allclose(obs[:8], env.data.qpos[1:], rtol=1e-6)
        np.testing.assert_allclose(obs[8:17], np.clip(env.data.qvel, -10, 10), rtol=1e-6)
        assert family.task_id(obs) == k
    fast = envs[0].set_state(*airborne_state(envs[0], vx=25.0))
    assert fast[8] == pytest.approx(10.0)  # qvel is clipped to [-10, 10]


def test_split_observation_zeroes_onehot(family: Walker2dMT4Env) -> None:
    env = family.make_task_env(2, seed=1, evaluation=False)
    obs, _ = env.reset(seed=1)
    batch = np.stack([obs, obs])
    net = family.split_observation(batch)
    assert net.shape == (2, 21)
    np.testing.assert_array_equal(net[:, 17:], 0.0)
    np.testing.assert_array_equal(net[:, :17], batch[:, :17])
    np.testing.assert_array_equal(family.split_observation(obs, include_task_id=True), obs)
    assert obs[19] == 1.0  # the input was not modified


def test_a_few_steps_and_info_keys(family: Walker2dMT4Env) -> None:
    keys = {
        "success",
        "task_id",
        "x_velocity",
        "reward_velocity",
        "reward_angle",
        "reward_height",
        "reward_ctrl",
        "reward_alive",
        "reward_foot",
        "reward_collision",
    }
    rng = np.random.default_rng(0)
    for k, env in enumerate(family.make_task_envs(evaluation=True)):
        env.reset(seed=0)
        for _ in range(5):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 6))
            assert isinstance(terminated, bool)
            assert obs.shape == (21,) and obs.dtype == np.float32
            assert isinstance(reward, float) and truncated is False
            assert keys <= set(info) and info["task_id"] == k
            # bookkeeping only: the reward_* parts add up to the reward (the reward formula
            # itself is checked against hand values in test_reward_formula_on_set_state)
            parts = sum(v for key, v in info.items() if key.startswith("reward_"))
            assert reward == pytest.approx(parts)


def test_play_mode_through_family(family: Walker2dMT4Env) -> None:
    obs, _ = family.reset(seed=0, options={"task": 3})
    assert np.argmax(obs[17:]) == 3
    obs, *_ = family.step(np.zeros(6, dtype=np.float32))
    assert np.argmax(obs[17:]) == 3


# ------------------------------------------------------------------------------ rewards
@pytest.mark.parametrize("task", range(4))
def test_reward_formula_on_set_state(task: int) -> None:
    env = WalkerTaskEnv(task, seed=0)
    env.reset(seed=0)
    qpos, qvel = airborne_state(env)
    qpos[5], qpos[8] = 0.3, -0.25  # feet off their zero angle: the foot term is a difference
    env.set_state(qpos, qvel)
    action = np.array([0.5, -0.3, 1.5, 0.0, -2.0, 0.2])  # out-of-range entries get clipped
    _, reward, terminated, _, info = env.step(action)
    after = env.data.qpos.copy()
    v = (after[0] - qpos[0]) / DT
    foot = (abs(after[5] - qpos[5]) + abs(after[8] - qpos[8])) / DT
    dh = independent_delta_h(env.model, after)
    expected = spec_reward(task, v, after[2], dh, foot, np.clip(action, -1, 1), False)
    assert reward == pytest.approx(expected, abs=1e-9)
    assert info["x_velocity"] == pytest.approx(v)
    assert not terminated
    assert info["reward_ctrl"] == pytest.approx(-0.001 * (0.25 + 0.09 + 1 + 0 + 1 + 0.04))


def test_velocity_terms_per_task() -> None:
    """In the air with no action the walker keeps vx = 2: check each task's velocity term."""
    expected = {FORWARD: 2.0, BACKWARD: -2.0, BALANCE: -2.0, CRAWL: 4.0}
    for task, term in expected.items():
        env = WalkerTaskEnv(task, seed=0)
        env.reset(seed=0)
        env.set_state(*airborne_state(env, vx=2.0))
        _, _, _, _, info = env.step(np.zeros(6))
        assert info["x_velocity"] == pytest.approx(2.0, abs=1e-3)
        assert info["reward_velocity"] == pytest.approx(term, abs=3e-3)
    backward = WalkerTaskEnv(BACKWARD, seed=0)
    backward.reset(seed=0)
    backward.set_state(*airborne_state(backward, vx=-3.0))
    _, _, _, _, info = backward.step(np.zeros(6))
    assert info["reward_velocity"] == pytest.approx(3.0, abs=3e-3)  # the peak: -v = 3


def test_height_and_foot_terms() -> None:
    env = WalkerTaskEnv(FORWARD, seed=0)
    qpos, qvel = standing_state(env)
    env.set_state(qpos, qvel)
    assert env.delta_h() == pytest.approx(1.25)  # torso at 1.25, foot frames at 0
    _, _, _, _, info = env.step(np.zeros(6))
    assert info["reward_height"] == pytest.approx(-0.15, abs=2e-3)
    assert info["reward_foot"] == pytest.approx(0.0, abs=2e-3)
    balance = WalkerTaskEnv(BALANCE, seed=0)
    balance.set_state(qpos, qvel)
    _, _, _, _, info = balance.step(np.zeros(6))
    assert info["reward_height"] == pytest.approx(-0.075, abs=1e-3)
    balance.set_state(*airborne_state(balance))
    _, _, _, _, info = balance.step(np.zeros(6))
    assert info["reward_foot"] == 0.0  # balance has no foot term
    env.set_state(*airborne_state(env))
    _, _, _, _, info = env.step(np.zeros(6))
    assert info["reward_foot"] == pytest.approx(-0.01 * (1.5 + 0.5), abs=2e-3)


# ------------------------------------------------------------------------------ terminations
def lying_state(env: WalkerTaskEnv, height: float, x: float = -3.0):
    qpos, qvel = standing_state(env)
    qpos[0], qpos[1], qpos[2] = x, height, np.pi / 2
    return qpos, qvel


@pytest.mark.parametrize("task", range(4))
def test_termination_by_height(task: int) -> None:
    """Terminated when the root height is below 0.8 (Crawl: below 0.3), probed 0.01 either side
    of each limit: lying flat there touches nothing, and one step of free fall drops ~0.0003."""
    limit = 0.3 if task == CRAWL else 0.8
    env = WalkerTaskEnv(task, seed=0)
    env.reset(seed=0)
    env.set_state(*standing_state(env))
    _, _, terminated, _, info = env.step(np.zeros(6))
    assert not terminated and not info["success"]
    for height in (0.81, 0.79, 0.5, 0.31, 0.29):
        env.set_state(*lying_state(env, height))
        _, _, terminated, _, info = env.step(np.zeros(6))
        assert env.data.qpos[1] == pytest.approx(height, abs=1e-3)  # still at the probed height
        assert env.data.ncon == 0  # no contact: the height alone decides
        assert terminated is (height < limit), height
        assert not info["success"]
    env.set_state(*lying_state(env, 0.15))  # lying on (in) the floor
    _, _, terminated, _, info = env.step(np.zeros(6))
    assert terminated and not info["success"]


def test_crawl_ceiling_contact_terminates() -> None:
    env = WalkerTaskEnv(CRAWL, seed=0)
    env.reset(seed=0)
    qpos, qvel = standing_state(env)
    qpos[0] = 5.0  # under the ceiling; the upright torso (z 1.0-1.5) pokes through it
    env.set_state(qpos, qvel)
    assert env.ceiling_contact()
    _, reward, terminated, _, info = env.step(np.zeros(6))
    assert terminated and not info["success"]
    assert info["reward_collision"] == -10.0
    assert reward < 0.0
    # crouched under the ceiling (torso below 0.9) there is no contact
    env.set_state(*lying_state(env, 0.5, x=5.0))
    assert not env.ceiling_contact()
    _, _, terminated, _, info = env.step(np.zeros(6))
    assert not terminated and info["reward_collision"] == 0.0
    # a single contact, the tilted torso against the ceiling, is a hit too
    tilted, _ = standing_state(env)
    tilted[0], tilted[1], tilted[2] = 5.0, 0.9, 1.0
    env.set_state(tilted, np.zeros(env.model.nv))
    assert env.data.ncon == 1 and env.ceiling_contact()
    # the same upright pose with no ceiling above is fine
    qpos[0] = -1.0
    env.set_state(qpos, qvel)
    _, _, terminated, _, info = env.step(np.zeros(6))
    assert not terminated and info["reward_collision"] == 0.0


def test_walking_tasks_ignore_ceiling_position() -> None:
    env = WalkerTaskEnv(FORWARD, seed=0)
    qpos, qvel = standing_state(env)
    qpos[0] = 5.0
    env.set_state(qpos, qvel)
    _, _, terminated, _, info = env.step(np.zeros(6))
    assert not terminated and info["reward_collision"] == 0.0


# ------------------------------------------------------------------------------ success
@pytest.mark.parametrize("task", [FORWARD, CRAWL])
def test_success_on_step_1000_without_termination(task: int) -> None:
    env = WalkerTaskEnv(task, seed=0)
    env.reset(seed=0)
    qpos, qvel = standing_state(env)
    qpos[0] = -5.0
    for t in range(1, HORIZON + 2):
        env.set_state(qpos, qvel)  # hold the walker up so only the step count matters
        _, _, terminated, truncated, info = env.step(np.zeros(6))
        assert not terminated and not truncated
        assert info["success"] is (t >= HORIZON), t
    env.reset(seed=0)
    assert env.elapsed_steps == 0
    _, _, _, _, info = env.step(np.zeros(6))
    assert not info["success"]


def test_no_success_when_falling_on_step_1000() -> None:
    env = WalkerTaskEnv(BALANCE, seed=0)
    env.reset(seed=0)
    for _ in range(HORIZON - 1):
        env.set_state(*standing_state(env))
        env.step(np.zeros(6))
    env.set_state(*lying_state(env, 0.15))
    _, _, terminated, _, info = env.step(np.zeros(6))
    assert terminated and not info["success"]


# ------------------------------------------------------------------------------ seeding
def rollout(env, seed: int, n: int = 40) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    out = [obs]
    for _ in range(n):
        obs, _, terminated, _, _ = env.step(rng.uniform(-1, 1, 6).astype(np.float32))
        out.append(obs)
        if terminated:
            break
    return np.stack(out)


def test_seeded_determinism() -> None:
    a = Walker2dMT4Env(seed=7).make_task_envs(evaluation=False)
    b = Walker2dMT4Env(seed=7).make_task_envs(evaluation=False)
    for env_a, env_b in zip(a, b, strict=True):
        np.testing.assert_array_equal(rollout(env_a, 3), rollout(env_b, 3))
    assert not np.array_equal(rollout(a[0], 3)[0], rollout(a[0], 4)[0])


def test_construction_seed_drives_unseeded_reset() -> None:
    fam = Walker2dMT4Env(seed=11)
    train1 = fam.make_task_envs(evaluation=False)[2]
    train2 = fam.make_task_envs(evaluation=False)[2]
    evaluation = fam.make_task_envs(evaluation=True)[2]
    obs1, _ = train1.reset()
    obs2, _ = train2.reset()
    obs3, _ = evaluation.reset()
    np.testing.assert_array_equal(obs1, obs2)
    assert not np.array_equal(obs1, obs3)
    # the reset perturbation plus the random steps actually move the walker off its init pose
    assert np.abs(obs1[:8] - train1.model.qpos0[1:]).max() > 1e-3


def test_reset_random_steps() -> None:
    for task, random_steps in enumerate((5, 5, 10, 5)):  # balance takes 10 random steps
        env = WalkerTaskEnv(task, seed=0)
        env.reset(seed=5)
        assert env.elapsed_steps == 0
        assert env.data.time == pytest.approx(random_steps * DT)


def test_crawl_contacts_match_the_reported_state() -> None:
    """The ceiling check reads the contacts of the state after the step, not a stale one."""
    env = WalkerTaskEnv(CRAWL, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    fresh = mujoco.MjData(env.model)
    checked = 0
    for _ in range(30):
        _, _, terminated, _, _ = env.step(rng.uniform(-1, 1, 6))
        if terminated:
            break
        fresh.qpos[:] = env.data.qpos
        fresh.qvel[:] = env.data.qvel
        mujoco.mj_fwdPosition(env.model, fresh)
        assert env.data.ncon == fresh.ncon
        np.testing.assert_allclose(env.data.contact.dist, fresh.contact.dist, atol=1e-12)
        checked += env.data.ncon
    assert checked > 0  # the feet touched the floor at some point


# ------------------------------------------------------------------------------ rendering
@pytest.mark.slow
@pytest.mark.parametrize("task", [FORWARD, CRAWL])
def test_render_upright_frame(task: int) -> None:
    fam = Walker2dMT4Env(seed=0)
    env = fam.make_task_env(task, seed=0, evaluation=True, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        top = frame[:30].reshape(-1, 3).astype(float)
        bottom = frame[-30:].reshape(-1, 3).astype(float)
        # sky on top: the blue-grey gradient skybox, smooth and bluer than red
        assert top[:, 2].mean() > top[:, 0].mean() + 15
        assert top.std(axis=0).max() < 25
        # floor at the bottom: the high-contrast checker plane
        assert bottom.std(axis=0).max() > 50
        # stepping does not render, and frames keep coming after steps
        env.step(np.zeros(6))
        assert env.render().shape == (240, 320, 3)
    finally:
        env.close()
    assert WalkerTaskEnv(FORWARD, seed=0).render() is None  # no render_mode, no frame
