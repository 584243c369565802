"""Tests of JacoReachMT5-v1 (the Multistage Reacher): the compiled model's facts and quirks, the
reset pose, reachability of every sub-goal, observation layout, every task's success / stage /
termination rule driven by state and by a scripted torque-limited controller, the reward formula,
the stay task in train and evaluation instances, instability handling, seeding and exact resume."""

from __future__ import annotations

import copy
import math
import os
import pickle

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless rendering

import mujoco
import numpy as np
import pytest

from environments.env_state import load_env, save_env
from environments.jaco import (
    GEARS,
    HAND_BODY,
    JOINT_NAMES,
    OBS_DIM,
    SUBGOALS,
    TASK_SEQUENCES,
    JacoReachMT5Env,
    JacoReachTaskEnv,
    load_jaco_reach_model,
    solve_hand_ik,
)
from experiment_utils import env_config

#: the paper's sub-goals S0..S3 (world xyz, metres)
SPEC_SUBGOALS = np.array([(0.2, 0.3, 0.5), (0.3, 0.0, 0.3), (0.4, -0.3, 0.4), (0.4, 0.3, 0.2)])
#: sub-goal order of each task (task 4, "stay", has none)
SPEC_SEQUENCES: list[tuple[int, int, int] | None] = [
    (0, 1, 2),
    (0, 1, 3),
    (1, 3, 2),
    (1, 2, 0),
    None,
]
REACH_TASKS = [0, 1, 2, 3]
#: success = hand within this distance of the current target (strictly less)
SUCCESS_RADIUS = 0.05
#: radius of the target sphere (a display size, not the success radius)
TARGET_SPHERE_RADIUS = 0.049
#: the model's qpos0 (joint refs): joint 5 starts at -2.8, outside its range
QPOS0 = np.array([0.0, 0.0, 0.0, 0.0, -2.8, 0.0])
#: hand position at qpos0 and its distances to S0..S3
RESET_HAND = np.array([0.410, 0.119, 0.239])
RESET_DISTANCES = np.array([0.38, 0.17, 0.45, 0.19])
#: gains of the scripted joint-space PD controller (N m / rad, N m s / rad), in the middle of the
#: range where it completes every reach task
KP, KD = 24.0, 0.9
#: sub-goals the scripted controller reaches per reach task (measured, deterministic)
SCRIPTED_STAGES = {0: 3, 1: 3, 2: 3, 3: 3}
#: success steps of the scripted controller in a 200-step stay episode (measured)
STAY_SCRIPTED_SUCCESSES = 2


@pytest.fixture(scope="module")
def family() -> JacoReachMT5Env:
    return JacoReachMT5Env(seed=3)


@pytest.fixture(scope="module")
def ik_solutions() -> dict[int, np.ndarray]:
    """Joint positions putting the hand on each sub-goal (solved from the reset pose)."""
    model = load_jaco_reach_model()
    out = {}
    for k, goal in enumerate(SPEC_SUBGOALS):
        q, err = solve_hand_ik(model, goal, model.qpos0)
        assert err < 1e-3, f"sub-goal S{k} unreachable by IK (left {err:.4f} m)"
        out[k] = q
    return out


def scripted_action(env: JacoReachTaskEnv, q_goal: np.ndarray) -> np.ndarray:
    """Joint-space PD towards `q_goal` plus gravity compensation, clipped to the motors' limits."""
    torque = env.data.qfrc_bias + KP * (q_goal - env.data.qpos) - KD * env.data.qvel
    return np.clip(torque / env.model.actuator_gear[:, 0], -1, 1).astype(np.float32)


def hold_action(env: JacoReachTaskEnv) -> np.ndarray:
    """Torques cancelling gravity at the current state (keeps a resting arm where it is)."""
    return np.clip(env.data.qfrc_bias / env.model.actuator_gear[:, 0], -1, 1).astype(np.float32)


def control_term(env: JacoReachTaskEnv, action: np.ndarray) -> float:
    a = np.clip(np.asarray(action, dtype=np.float64), -1, 1)
    return float(
        -0.01 * np.sum(a**2)
        - 0.001 * np.mean(np.abs(env.data.qvel))
        - 1e-5 * np.mean(np.abs(env.data.qacc))
    )


# ----------------------------------------------------------------------------------- structure
def test_family_attributes(family: JacoReachMT5Env) -> None:
    assert family.num_tasks == 5
    assert family.obs_dim == OBS_DIM == 23
    assert family.action_dim == 6
    assert family.onehot_start == 15
    assert family.onehot_mode == "zero"
    assert family.network_obs_dim() == 23
    assert family.horizon == 200
    assert family.min_reward == -5.0
    assert family.episode_info_metrics == {
        "stages_completed": ("StagesCompleted", "last"),
        "full_success": ("FullSuccessRate", "max"),
    }
    assert env_config("JacoReachMT5-v1")[0] == {
        "n_epochs": 2000,
        "batch_size": 1000,
        "steps_per_epoch": 1,
        "gradient_steps_per_itr": 1000,
        "buffer_batch_size": 32,
        "min_buffer_size": 10000,
        "lr": 3e-4,
        "hidden_sizes": [256, 256],
        "num_evaluation_episodes": 50,
    }
    with pytest.raises(TypeError):
        family.make_task_env(0, seed=0, evaluation=False, bogus=1)


def test_subgoals_and_task_sequences(family: JacoReachMT5Env) -> None:
    """The sub-goals and each task's order are the paper's; every env starts on its first one."""
    np.testing.assert_array_equal(SUBGOALS, SPEC_SUBGOALS)
    assert list(TASK_SEQUENCES) == SPEC_SEQUENCES
    for k, env in enumerate(family.get_train_envs()):
        env.reset(seed=k)
        if SPEC_SEQUENCES[k] is None:
            assert env.is_stay
            continue
        np.testing.assert_array_equal(env.goals, SPEC_SUBGOALS[list(SPEC_SEQUENCES[k])])
        np.testing.assert_array_equal(env.target_position, SPEC_SUBGOALS[SPEC_SEQUENCES[k][0]])
        env.close()


def test_model() -> None:
    model = load_jaco_reach_model()
    assert (model.nq, model.nv, model.nu, model.nbody) == (6, 6, 6, 9)
    assert model.opt.timestep == 0.01
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert model.opt.iterations == 10
    np.testing.assert_allclose(model.opt.gravity, [0, 0, -9.8])
    np.testing.assert_allclose(model.geom_margin, 0.001)
    assert model.body("jaco_link_base").pos[2] == pytest.approx(0.25)
    np.testing.assert_array_equal(model.body("jaco_link_base").pos[:2], [0, 0])
    # torque motors: gear 5 on joint 1, 10 on joints 2-6, ctrl clamped to [-1, 1]
    np.testing.assert_allclose(model.actuator_gear[:, 0], GEARS)
    np.testing.assert_allclose(GEARS, [5, 10, 10, 10, 10, 10])
    np.testing.assert_allclose(model.actuator_ctrlrange, [[-1, 1]] * 6)
    assert model.actuator_ctrllimited.all()
    assert [model.joint(model.actuator_trnid[k, 0]).name for k in range(6)] == list(JOINT_NAMES)
    # limited hinges with the model's ranges, damping and armature
    assert (model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE).all() and model.jnt_limited.all()
    lim = 0.698132
    np.testing.assert_allclose(
        model.jnt_range, [[-0.8, 0.8], [-1.5, 0.7]] + [[-lim, lim]] * 4, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(model.dof_damping, 0.5)
    np.testing.assert_allclose(model.dof_armature, 0.01)
    # qpos0: joint 5's ref -2.8 puts the reset pose outside its own range (kept from the original)
    np.testing.assert_allclose(model.qpos0, QPOS0)
    assert not model.jnt_range[4, 0] <= model.qpos0[4] <= model.jnt_range[4, 1]
    # explicit inertials, not the meshes' (a few values of the model)
    assert model.body("jaco_link_2").mass[0] == pytest.approx(1.85031)
    assert model.body("jaco_link_hand").mass[0] == pytest.approx(0.58074)
    assert model.body_mass[1:8].sum() == pytest.approx(4.990241)
    # the arm touches only the floor; the target never collides
    target = model.body("target").id
    arm = [g for g in range(model.ngeom) if model.geom_bodyid[g] not in (0, target)]
    assert len(arm) == 8  # seven meshes and the base post
    assert all(model.geom_contype[g] == 1 and model.geom_conaffinity[g] == 0 for g in arm)
    assert model.geom("floor").contype[0] == 1 and model.geom("floor").conaffinity[0] == 1
    assert model.nmesh == 7
    geom = model.geom("target")
    assert geom.size[0] == pytest.approx(TARGET_SPHERE_RADIUS)
    assert geom.contype[0] == 0 and geom.conaffinity[0] == 0
    assert model.body_mocapid[model.body("target").id] >= 0


def test_weak_shoulder_quirk(ik_solutions: dict[int, np.ndarray]) -> None:
    """Joint 2's motor cannot hold the arm at the reset pose, nor at the far sub-goals S2, S3."""
    model = load_jaco_reach_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    ratio = np.abs(data.qfrc_bias) / model.actuator_gear[:, 0]
    assert ratio[1] == pytest.approx(1.07, abs=0.005)
    assert np.all(ratio[[0, 2, 3, 4, 5]] < 0.05)
    for k, needed in enumerate((0.83, 0.92, 1.11, 1.18)):
        data.qpos[:] = ik_solutions[k]
        mujoco.mj_forward(model, data)
        assert abs(data.qfrc_bias[1]) / GEARS[1] == pytest.approx(needed, abs=0.01), f"S{k}"


def test_reset_pose_and_zero_action_quirks() -> None:
    model = load_jaco_reach_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    hand = data.xpos[model.body(HAND_BODY).id]
    np.testing.assert_allclose(hand, RESET_HAND, atol=5e-4)
    distances = np.linalg.norm(SPEC_SUBGOALS - hand, axis=1)
    np.testing.assert_allclose(distances, RESET_DISTANCES, atol=5e-3)

    env = JacoReachTaskEnv(0, seed=0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert np.all(np.abs(obs[0:6] - QPOS0) <= 0.01)
        assert np.all(np.abs(obs[6:12]) <= 0.001)
        np.testing.assert_allclose(obs[20:23], RESET_HAND, atol=0.02)
    # joint 5 starts beyond its limit: the limit throws the hand ~0.14 m in the first 4 steps
    start = env.hand_position
    for _ in range(4):
        env.step(np.zeros(6, dtype=np.float32))
    assert 0.1 < np.linalg.norm(env.hand_position - start) < 0.2
    assert env.data.qpos[4] == pytest.approx(-0.698, abs=0.01)
    # and the too-weak shoulder lets the arm sag (hand z 0.24 -> ~0.09)
    for _ in range(196):
        env.step(np.zeros(6, dtype=np.float32))
    assert env.hand_position[2] < 0.12


def test_spaces_and_layout(family: JacoReachMT5Env) -> None:
    for k, env in enumerate(family.get_train_envs()):
        obs, info = env.reset(seed=k)
        assert obs.dtype == np.float32 and obs.shape == (23,)
        assert env.observation_space.contains(obs)
        assert env.action_space.shape == (6,) and env.action_space.dtype == np.float32
        assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
        np.testing.assert_array_equal(obs[15:20], np.eye(5)[k])
        np.testing.assert_array_equal(obs[12:15], [1, 0, 0])
        np.testing.assert_allclose(obs[0:6], env.data.qpos, atol=1e-6)
        np.testing.assert_allclose(obs[0:6], QPOS0, atol=0.0101)
        np.testing.assert_allclose(obs[20:23], env.hand_position, atol=1e-6)
        assert family.task_id(obs) == k
        assert info["task_id"] == k
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.dtype == np.float32 and isinstance(reward, float)
        assert truncated is False and terminated is False
        for key in (
            "success",
            "stages_completed",
            "full_success",
            "task_id",
            "reward_dist",
            "reward_stage",
            "reward_ctrl",
        ):
            assert key in info
        assert isinstance(info["stages_completed"], int)
        env.close()


def test_split_observation(family: JacoReachMT5Env) -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(4, 23)).astype(np.float32)
    before = obs.copy()
    net = family.split_observation(obs)
    np.testing.assert_array_equal(obs, before)  # input untouched
    assert net.shape == obs.shape
    np.testing.assert_array_equal(net[:, :15], obs[:, :15])
    assert np.all(net[:, 15:] == 0)  # task one-hot and hand position hidden (as the original)
    with_id = family.split_observation(obs, include_task_id=True)
    np.testing.assert_array_equal(with_id[:, :20], obs[:, :20])
    assert np.all(with_id[:, 20:] == 0)
    np.testing.assert_array_equal(family.task_id(np.eye(23, dtype=np.float32)[15:20]), range(5))


# ----------------------------------------------------------------------------------- reachability
def test_subgoals_reachable_by_ik(ik_solutions: dict[int, np.ndarray]) -> None:
    model = load_jaco_reach_model()
    data = mujoco.MjData(model)
    for k, q in ik_solutions.items():
        data.qpos[:] = q
        mujoco.mj_forward(model, data)
        assert np.linalg.norm(data.xpos[model.body(HAND_BODY).id] - SPEC_SUBGOALS[k]) < 1e-3
        lo, hi = model.jnt_range.T
        assert np.all((lo <= q) & (q <= hi)), f"the IK pose for S{k} leaves the joint limits"
        assert data.ncon == 0, f"the IK pose for S{k} is in collision"


def run_scripted(env: JacoReachTaskEnv, task: int) -> list[int]:
    """Drive `env` (just reset) with the scripted controller for one episode, checking the stage,
    target and termination rules on the way; returns the steps at which sub-goals were reached.

    The controller aims at an IK solution for the current target (re-solved from the current pose
    whenever the target moves). Joint 2's motor cannot hold the hand at S2 or S3: it swings the
    hand through them."""
    sequence = SPEC_SUBGOALS[list(SPEC_SEQUENCES[task])]
    np.testing.assert_allclose(env.target_position, sequence[0])
    reached: list[int] = []
    goal = q_goal = None
    for t in range(200):
        if goal is None or not np.array_equal(goal, env.target_position):
            goal = env.target_position
            q_goal, err = solve_hand_ik(env.model, goal, env.data.qpos)
            assert err < 1e-3
        obs, _, terminated, _, info = env.step(scripted_action(env, q_goal))
        if info["success"]:
            assert np.linalg.norm(obs[20:23] - goal) < SUCCESS_RADIUS
            reached.append(t)
            stage = min(len(reached), 2)
            np.testing.assert_array_equal(obs[12:15], np.eye(3)[stage])  # in range (bug 11)
            if len(reached) < 3:
                np.testing.assert_allclose(env.target_position, sequence[len(reached)])
        assert info["stages_completed"] == len(reached)
        assert terminated == (len(reached) == 3)
        assert info["full_success"] == (len(reached) == 3)
        if terminated:
            break
    return reached


@pytest.mark.parametrize("task", REACH_TASKS)
def test_scripted_controller_reaches_subgoals(task: int) -> None:
    """A torque-limited controller takes the hand to the first sub-goal of every reach task, and
    (measured, pinned) through all three in order: each success advances the stage and moves the
    target; the third one terminates."""
    env = JacoReachTaskEnv(task, seed=task)
    env.reset(seed=task)
    reached = run_scripted(env, task)
    assert len(reached) >= 1, f"task {task}: first sub-goal not reached"
    assert len(reached) == SCRIPTED_STAGES[task]
    # deterministic: the same seed gives the same run
    env.reset(seed=task)
    assert run_scripted(env, task) == reached


# ----------------------------------------------------------------------------------- state-driven
@pytest.mark.parametrize("task", REACH_TASKS)
def test_success_by_state_and_reward(task: int, ik_solutions: dict[int, np.ndarray]) -> None:
    env = JacoReachTaskEnv(task, seed=0)
    env.reset(seed=0)
    seq = SPEC_SEQUENCES[task]
    for stage in range(3):
        # hand on the current target: success, stage advance, target moves on
        env.set_state(ik_solutions[seq[stage]], stage=stage)
        target_before = env.target_position
        np.testing.assert_allclose(target_before, SPEC_SUBGOALS[seq[stage]])
        action = hold_action(env)
        _, reward, terminated, _, info = env.step(action)
        dist = float(np.linalg.norm(env.hand_position - target_before))
        assert info["success"] and dist < SUCCESS_RADIUS
        assert info["stages_completed"] == env.stage == stage + 1
        assert terminated == (stage == 2)
        if stage < 2:
            np.testing.assert_allclose(env.target_position, SPEC_SUBGOALS[seq[stage + 1]])
        expected_dist = 0.0 if task == 3 else -dist
        expected_stage = 200.0 if task == 1 else -0.4 * max(3 - (stage + 1), 0)
        expected = expected_dist + expected_stage + control_term(env, action)
        expected += -2.0 if task == 1 else 0.0
        assert reward == pytest.approx(expected, abs=1e-9)
        assert info["reward_dist"] == pytest.approx(expected_dist, abs=1e-12)
        assert info["reward_stage"] == pytest.approx(expected_stage)

        # hand elsewhere (on another sub-goal, not the current one): no success, stage kept
        other = next(k for k in range(4) if k != seq[stage])
        env.set_state(ik_solutions[other], stage=stage)
        action = hold_action(env)
        _, reward, terminated, _, info = env.step(action)
        dist = float(np.linalg.norm(env.hand_position - SPEC_SUBGOALS[seq[stage]]))
        assert not info["success"] and not terminated and not info["full_success"]
        assert env.stage == stage
        np.testing.assert_allclose(env.target_position, SPEC_SUBGOALS[seq[stage]])
        expected_dist = 0.0 if task == 3 else -dist
        expected_stage = 0.0 if task == 1 else -0.4 * (3 - stage)
        expected = expected_dist + expected_stage + control_term(env, action)
        expected += -2.0 if task == 1 else 0.0
        assert reward == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("task", range(5))
def test_success_radius_boundary(task: int, ik_solutions: dict[int, np.ndarray]) -> None:
    """Success is `distance to the target < 0.05`: the hand held 0.045 and 0.0496 m from the
    current target succeeds, 0.0504 and 0.055 m does not (a 0.049 m radius, the target sphere's,
    fails the second case)."""
    env = JacoReachTaskEnv(task, seed=0)
    env.reset(seed=0)
    if SPEC_SEQUENCES[task] is None:
        goal, q_start = env.goals[0], env.data.qpos.copy()
    else:
        first = SPEC_SEQUENCES[task][0]
        goal, q_start = SPEC_SUBGOALS[first], ik_solutions[first]
    np.testing.assert_array_equal(env.target_position, goal)
    towards_base = np.array([0.0, 0.0, 0.25]) - goal
    u = towards_base / np.linalg.norm(towards_base)
    for offset, inside in ((0.045, True), (0.0496, True), (0.0504, False), (0.055, False)):
        q, err = solve_hand_ik(env.model, goal + offset * u, q_start, tolerance=1e-5)
        assert err < 2e-5
        env.set_state(q, stage=0)
        _, _, terminated, _, info = env.step(hold_action(env))
        dist = float(np.linalg.norm(env.hand_position - goal))
        assert dist == pytest.approx(offset, abs=1.5e-4), (offset, dist)  # the hand stayed put
        assert info["success"] is inside == (dist < SUCCESS_RADIUS), (offset, dist)
        assert not terminated
        if SPEC_SEQUENCES[task] is not None:  # a success advances the stage, a miss does not
            assert env.stage == int(inside)
            expected_target = SPEC_SUBGOALS[SPEC_SEQUENCES[task][1]] if inside else goal
            np.testing.assert_array_equal(env.target_position, expected_target)
    env.close()


def test_action_clipping_in_control_term() -> None:
    env = JacoReachTaskEnv(0, seed=0)
    env.reset(seed=0)
    action = np.array([5.0, -3.0, 0.5, 0.0, 0.0, 0.0], dtype=np.float32)
    _, _, _, _, info = env.step(action)
    np.testing.assert_allclose(env.data.ctrl, [1.0, -1.0, 0.5, 0, 0, 0])
    assert info["reward_ctrl"] == pytest.approx(control_term(env, action))
    assert info["reward_ctrl"] < -0.01 * 2.25 + 1e-12


# ----------------------------------------------------------------------------------- stay task
def test_stay_task_same_in_train_and_eval(family: JacoReachMT5Env) -> None:
    """Both instances keep their own reset hand position as the goal (the original's test env
    shared the train env's goal list, a live view of the training arm, and was no stay task)."""
    train, test = family.get_train_envs()[4], family.get_test_envs()[4]
    for env in (train, test):
        assert env.is_stay
        env.reset(seed=None)
        np.testing.assert_allclose(env.goals[0], env.hand_position)
        np.testing.assert_allclose(env.target_position, env.hand_position)
    test_goal = test.goals[0]
    assert not np.allclose(train.goals[0], test_goal)  # seeded apart -> different reset poses
    # the goal is a copy: moving the training arm changes neither env's goal
    train_goal = train.goals[0]
    for _ in range(20):
        train.step(np.ones(6, dtype=np.float32))
    assert np.linalg.norm(train.hand_position - train_goal) > SUCCESS_RADIUS
    np.testing.assert_array_equal(train.goals[0], train_goal)
    np.testing.assert_array_equal(test.goals[0], test_goal)
    np.testing.assert_array_equal(test.target_position, test_goal)
    # both count 90 success steps (not 3 successes) before finishing. The motors cannot hold the
    # hand there (joint 2 is too weak), so each step starts from a pose inside the joint limits
    # that puts the hand on the goal
    for env in (train, test):
        env.reset()
        q_goal, err = solve_hand_ik(env.model, env.goals[0], env.data.qpos)
        assert err < 1e-3
        for t in range(90):
            env.set_state(q_goal)
            action = hold_action(env)
            _, reward, terminated, _, info = env.step(action)
            assert info["success"], t
            assert info["stages_completed"] == (t + 1) // 30
            assert terminated == (t == 89)
            assert info["full_success"] == (t == 89)
            assert info["reward_stage"] == 0.0
            # stay reward: distance and control terms only (no stage term, no shift)
            dist = float(np.linalg.norm(env.hand_position - env.goals[0]))
            assert reward == pytest.approx(-dist + control_term(env, action), abs=1e-9)
        env.close()


def test_stay_task_counts_cumulative_successes_by_state() -> None:
    env = JacoReachTaskEnv(4, seed=5)
    env.reset(seed=5)
    q0 = env.data.qpos.copy()
    goal = env.goals[0]
    away = q0 + np.array([0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    count = 0
    for t in range(200):
        at_goal = t % 3 != 2  # two success steps, then one away
        env.set_state(q0 if at_goal else away)
        action = hold_action(env)
        obs, reward, terminated, _, info = env.step(action)
        dist = float(np.linalg.norm(env.hand_position - goal))
        assert info["success"] == at_goal == (dist < SUCCESS_RADIUS)
        count += at_goal
        assert info["stages_completed"] == env.stage == count // 30
        stage_slot = min(count // 30, 2)
        np.testing.assert_array_equal(obs[12:15], np.eye(3)[stage_slot])
        assert reward == pytest.approx(-dist + control_term(env, action), abs=1e-9)
        np.testing.assert_array_equal(env.goals[0], goal)
        if terminated:
            break
    assert count == 90 and info["full_success"]
    assert t == 133  # the 90th success comes after 44 interleaved failures


# ----------------------------------------------------------------------------------- robustness
def test_instability_penalty_and_previous_observation() -> None:
    messages: list[str] = []
    previous_handler = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)  # keep MuJoCo from writing MUJOCO_LOG.TXT
    try:
        _check_instability()
    finally:
        mujoco.set_mju_user_warning(previous_handler)
    assert any("unstable" in m for m in messages)


def _check_instability() -> None:
    env = JacoReachTaskEnv(0, seed=0)
    env.reset(seed=0)
    prev, *_ = env.step(np.zeros(6, dtype=np.float32))
    env.data.qvel[1] = np.nan
    obs, reward, terminated, truncated, info = env.step(np.zeros(6, dtype=np.float32))
    assert reward == -100.0 and terminated and not truncated
    assert info["unstable"] and not info["success"]
    # the step's terms are not computed: zero, and no distance (the penalty is the reward)
    assert (info["reward_dist"], info["reward_stage"], info["reward_ctrl"]) == (0.0, 0.0, 0.0)
    assert math.isnan(info["distance"])
    np.testing.assert_array_equal(obs, prev)
    # a fresh reset clears the instability
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert not terminated and "unstable" not in info and math.isfinite(reward)


def test_seeded_determinism() -> None:
    def rollout(seed: int, evaluation: bool) -> list[np.ndarray]:
        fam = JacoReachMT5Env(seed=seed)
        envs = fam.make_task_envs(evaluation=evaluation)
        rng = np.random.default_rng(0)
        out = []
        for k, env in enumerate(envs):
            obs, _ = env.reset(seed=seed + k)
            out.append(obs)
            for _ in range(25):
                obs, *_ = env.step(rng.uniform(-1, 1, 6).astype(np.float32))
                out.append(obs)
        return out

    a, b = rollout(7, False), rollout(7, False)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = rollout(8, False)
    assert not np.array_equal(a[0], c[0])
    # construction seeds: train and evaluation instances start differently
    fam = JacoReachMT5Env(seed=7)
    train, test = fam.get_train_envs()[0], fam.get_test_envs()[0]
    assert not np.array_equal(train._last_obs, test._last_obs)


def test_family_play_api() -> None:
    fam = JacoReachMT5Env(seed=0)
    for expected in (0, 1, 2, 3, 4, 0):
        obs, info = fam.reset(seed=1)
        assert info["task_id"] == expected == fam.task_id(obs)
        obs, *_ = fam.step(np.zeros(6, dtype=np.float32))
    obs, info = fam.reset(options={"task": 4})
    assert info["task_id"] == 4
    fam.close()


@pytest.mark.slow
def test_render_rgb_array() -> None:
    env = JacoReachTaskEnv(0, seed=0, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 240, 3) and frame.dtype == np.uint8
    assert frame.std() > 10
    # upright: the lit floor fills the bottom of the frame, the dark sky gradient the top
    assert frame[-40:].mean() > frame[:40].mean() + 30
    env.close()
    assert JacoReachTaskEnv(0, seed=0).render() is None


def test_pickle_and_deepcopy_keep_stepping_the_copy() -> None:
    env = JacoReachTaskEnv(4, seed=0)
    env.step(np.full(6, 0.3, dtype=np.float32))
    for copier in (lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy):
        clone = copier(env)
        np.testing.assert_array_equal(clone.goals, env.goals)
        for _ in range(3):
            a = clone.step(np.full(6, -0.2, dtype=np.float32))
            b = env.step(np.full(6, -0.2, dtype=np.float32))
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1] == b[1]


@pytest.mark.parametrize("task", [0, 4])
def test_env_state_resume_mid_episode(task: int) -> None:
    """An env saved mid-episode and restored onto a fresh env continues identically."""
    fam = JacoReachMT5Env(seed=2)
    env = fam.make_task_envs(evaluation=False)[task]
    rng = np.random.default_rng(task)
    env.reset(seed=11)
    for _ in range(30):
        env.step(rng.uniform(-1, 1, 6).astype(np.float32))
    fresh = JacoReachMT5Env(seed=5).make_task_envs(evaluation=False)[task]
    restored = load_env(save_env(env), fresh)
    np.testing.assert_array_equal(restored.goals, env.goals)
    assert restored.stage == env.stage
    for _ in range(60):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        a, b = env.step(action), restored.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
    np.testing.assert_array_equal(env.reset(seed=4)[0], restored.reset(seed=4)[0])


def test_stay_goal_not_held_by_scripted_controller() -> None:
    """The too-weak shoulder cannot hold the hand at its reset position either: the scripted
    controller, aiming at an in-limits pose on the stay goal, keeps it there for only a few
    steps (measured, pinned) and never completes a stay stage."""
    fam = JacoReachMT5Env(seed=1)
    for env in (fam.get_train_envs()[4], fam.get_test_envs()[4]):
        env.reset(seed=6)
        q_goal, err = solve_hand_ik(env.model, env.goals[0], env.data.qpos)
        assert err < 1e-3
        successes = 0
        for _ in range(200):
            _, _, terminated, _, info = env.step(scripted_action(env, q_goal))
            successes += info["success"]
            assert not terminated
        assert info["stages_completed"] == 0
        assert successes == STAY_SCRIPTED_SUCCESSES
