"""Tests of KitchenMTEasy-v0 (environments/kitchen.py)."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from environments.kitchen import (
    ELEMENT_INDICES,
    ELEMENT_ON,
    ELEMENT_SITES,
    SUCCESS_REWARD,
    TASKS,
    KitchenMTEasyEnv,
    KitchenTaskEnv,
    tolerance,
)
from experiment_utils import env_config

N = 10
# knob -> burner and switch -> light are coupled by joint equalities (knob = 174 x burner,
# switch = 14 x light), so a physically consistent "element at its goal" uses these ratios
COUPLING = {"bottom burner": 174.0, "top burner": 174.0, "light switch": 14.0}

# the original's initial -> goal values of each element, rounded as its task list writes them
CLOSED = {
    "slide cabinet": [-4.7e-4],
    "hinge cabinet": [-6.4e-3, -1.8e-3],
    "bottom burner": [3.1e-5, -4.5e-5],
    "top burner": [6.3e-5, 4.0e-5],
    "light switch": [4.6e-4, -2.3e-4],
}
OPEN = {
    "slide cabinet": [0.37],
    "hinge cabinet": [0.0, 1.45],
    "bottom burner": [-0.88, -0.01],
    "top burner": [-0.92, -0.01],
    "light switch": [-0.69, -0.05],
}
#: success threshold on the element's distance to its goal, per task
THRESHOLDS = (0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3)


@pytest.fixture(scope="module")
def family() -> KitchenMTEasyEnv:
    return KitchenMTEasyEnv(seed=0)


@pytest.fixture(scope="module")
def task_envs(family: KitchenMTEasyEnv) -> list[KitchenTaskEnv]:
    envs = family.make_task_envs(evaluation=False)
    yield envs
    for env in envs:
        env.close()


def consistent(element: str, value: np.ndarray) -> np.ndarray:
    """The element's joint values with the coupled joint matching the main one."""
    value = np.array(value, dtype=np.float64)
    if element in COUPLING:
        value[1] = value[0] / COUPLING[element]
    return value


def gaussian_tol(x: float, upper: float, margin: float) -> float:
    """Independent form of the gaussian tolerance with bounds [0, upper] and 0.1 at the margin."""
    if x <= upper:
        return 1.0
    return 0.1 ** (((x - upper) / margin) ** 2)


# --------------------------------------------------------------------------------- structure
def test_family_attributes(family: KitchenMTEasyEnv) -> None:
    assert family.num_tasks == N
    assert family.task_names == (
        "slide-cabinet-open", "slide-cabinet-close", "hinge-cabinet-open", "hinge-cabinet-close",
        "bottom-burner-on", "bottom-burner-off", "top-burner-on", "top-burner-off",
        "light-switch-on", "light-switch-off",
    )  # fmt: skip
    assert family.horizon == 140
    assert family.min_reward == -20.0
    assert family.onehot_mode == "slice"
    assert family.obs_dim == 70
    assert family.action_dim == 9
    assert family.network_obs_dim() == 60
    assert family.network_obs_dim(include_task_id=True) == 70
    assert family.onehot_start == 60
    hp = env_config("KitchenMTEasy-v0")[0]
    assert hp == {
        "n_epochs": 1000, "batch_size": 2000, "steps_per_epoch": 5,
        "gradient_steps_per_itr": 500, "buffer_batch_size": 1280, "min_buffer_size": 2000,
        "lr": 3e-4, "hidden_sizes": [256, 256], "num_evaluation_episodes": 50,
    }  # fmt: skip
    assert family.action_space.shape == (9,)
    assert family.action_space.dtype == np.float32
    assert np.all(family.action_space.low == -1.0) and np.all(family.action_space.high == 1.0)
    assert family.observation_space.dtype == np.float32


def test_qpos_layout_matches_spec_indices() -> None:
    """The original's 30-D joint-vector indices are the kitchen model's qpos addresses."""
    env = KitchenTaskEnv(0)
    model = env.model
    names = {int(model.jnt_qposadr[j]): model.joint(j).name for j in range(model.njnt)}
    expected = {
        11: "knob_Joint_2", 12: "bottom_left_burner", 15: "knob_Joint_4", 16: "top_left_burner",
        17: "light_switch", 18: "light_joint", 19: "slide_cabinet", 20: "left_hinge_cabinet",
        21: "right_hinge_cabinet", 22: "microwave", 23: "kettle",
    }  # fmt: skip
    for idx, name in expected.items():
        assert names[idx] == name
    assert [names[i].startswith("robot:") for i in range(9)] == [True] * 9
    assert model.nq == 30
    assert list(ELEMENT_INDICES["bottom burner"]) == [11, 12]
    assert list(ELEMENT_INDICES["top burner"]) == [15, 16]
    assert list(ELEMENT_INDICES["light switch"]) == [17, 18]
    assert list(ELEMENT_INDICES["slide cabinet"]) == [19]
    assert list(ELEMENT_INDICES["hinge cabinet"]) == [20, 21]
    # each reach site sits on the body moved by the element's driving joint (the one whose goal
    # moves: knob, switch, slide, right hinge door)
    driver = {"bottom burner": 11, "top burner": 15, "light switch": 17, "slide cabinet": 19,
              "hinge cabinet": 21}  # fmt: skip
    for element, site in ELEMENT_SITES.items():
        site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        assert site_id >= 0, site
        body = model.site_bodyid[site_id]
        joints = [
            int(model.jnt_qposadr[j]) for j in range(model.njnt) if model.jnt_bodyid[j] == body
        ]
        assert joints == [driver[element]], (element, site, joints)
    env.close()


def test_task_initial_and_goal_values(task_envs: list[KitchenTaskEnv]) -> None:
    for k, env in enumerate(task_envs):
        element = TASKS[k].element
        start, goal = (CLOSED, OPEN) if TASKS[k].turn_on else (OPEN, CLOSED)
        assert env.task_spec.turn_on == (k % 2 == 0)
        np.testing.assert_allclose(env.initial_value, start[element], atol=6e-5)
        np.testing.assert_allclose(env.goal_value, goal[element], atol=6e-5)
        env.reset(seed=k)
        # the reset state has the element at its initial values (close/off tasks start open/on)
        np.testing.assert_allclose(env.data.qpos[env.element_indices], env.initial_value)
        assert env.task_spec.threshold == THRESHOLDS[k]


def test_observation_layout(task_envs: list[KitchenTaskEnv], family: KitchenMTEasyEnv) -> None:
    for k, env in enumerate(task_envs):
        obs, info = env.reset(seed=100 + k)
        assert obs.shape == (70,) and obs.dtype == np.float32
        assert env.observation_space.contains(obs)
        assert info["task_id"] == k
        onehot = np.zeros(N, dtype=np.float32)
        onehot[k] = 1.0
        np.testing.assert_array_equal(obs[60:], onehot)
        assert family.task_id(obs) == k
        # noisy robot and object joint positions, close to the true state
        np.testing.assert_allclose(obs[:30], env.data.qpos[:30], atol=0.011)
        # goal vector: the element holds this task's own goal (also for off tasks: bug 16 fixed)
        goal = obs[30:60]
        np.testing.assert_allclose(goal[env.element_indices], env.goal_value, rtol=1e-6)
        np.testing.assert_allclose(goal[22], -0.75)  # fixed microwave goal, constant
        net = family.split_observation(obs)
        assert net.shape == (60,)
        np.testing.assert_array_equal(net, obs[:60])
    # burner / light on vs off tasks now show different goals
    o4, o5 = task_envs[4].reset(seed=0)[0], task_envs[5].reset(seed=0)[0]
    assert not np.allclose(o4[30 + 11], o5[30 + 11])
    o8, o9 = task_envs[8].reset(seed=0)[0], task_envs[9].reset(seed=0)[0]
    assert not np.allclose(o8[30 + 17], o9[30 + 17])
    batch = np.stack([env.reset(seed=1)[0] for env in task_envs])
    np.testing.assert_array_equal(family.task_id(batch), np.arange(N))
    assert family.split_observation(batch).shape == (N, 60)


def test_noise_free_observation_is_exact() -> None:
    env = KitchenTaskEnv(3, noise_ratio=0.0, seed=0)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[:30], env.data.qpos[:30], rtol=1e-6, atol=1e-7)
    obs, *_ = env.step(np.full(9, 0.5, dtype=np.float32))
    np.testing.assert_allclose(obs[:30], env.data.qpos[:30], rtol=1e-6, atol=1e-7)
    env.close()


# --------------------------------------------------------------------------------- dynamics
def test_random_steps(task_envs: list[KitchenTaskEnv]) -> None:
    rng = np.random.default_rng(0)
    env = task_envs[0]
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(
            rng.uniform(-1, 1, 9).astype(np.float32)
        )
        assert obs.shape == (70,) and obs.dtype == np.float32
        # range only (holds by the formula's form); the formula: test_dense_reward_formula
        assert -20.0 <= reward <= 0.0
        assert terminated is False and truncated is False
        assert info["success"] is False
        for key in ("task_id", "goal_distance", "hand_distance", "in_place", "reach"):
            assert key in info


def test_actions_move_the_robot(task_envs: list[KitchenTaskEnv]) -> None:
    env = task_envs[0]
    env.reset(seed=0)
    q0 = env.data.qpos[:9].copy()
    for _ in range(3):
        env.step(np.array([1.0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=np.float32))
    # joint 1 velocity target 2 rad/s for 0.24 s (the position servo lags behind)
    assert env.data.qpos[0] - q0[0] > 0.1
    assert np.all(np.abs(env.data.qpos[1:7] - q0[1:7]) < 0.1)


def test_seeded_determinism(family: KitchenMTEasyEnv) -> None:
    env_a = family.make_task_env(5, seed=11, evaluation=False)
    env_b = KitchenMTEasyEnv.make_task_env(family, 5, seed=11, evaluation=False)
    env_c = family.make_task_env(5, seed=12, evaluation=False)
    oa, ob, oc = env_a.reset(seed=3)[0], env_b.reset(seed=3)[0], env_c.reset(seed=4)[0]
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa, oc)  # the noise differs
    rng = np.random.default_rng(1)
    for _ in range(10):
        action = rng.uniform(-1, 1, 9).astype(np.float32)
        sa, sb = env_a.step(action), env_b.step(action)
        np.testing.assert_array_equal(sa[0], sb[0])
        assert sa[1] == sb[1]
    # a later reset without seed continues the stream identically
    np.testing.assert_array_equal(env_a.reset()[0], env_b.reset()[0])
    for env in (env_a, env_b, env_c):
        env.close()


def test_train_and_eval_instances_differ(family: KitchenMTEasyEnv) -> None:
    train = family.make_task_env(1, seed=0 + 1, evaluation=False)
    evaluation = family.make_task_env(1, seed=1000 + 1, evaluation=True)
    assert train is not evaluation
    assert not np.array_equal(train.reset()[0], evaluation.reset()[0])
    train.close()
    evaluation.close()


# --------------------------------------------------------------------------------- success
@pytest.mark.slow
def test_success_at_goal_for_every_task(task_envs: list[KitchenTaskEnv]) -> None:
    for k, env in enumerate(task_envs):
        element = TASKS[k].element
        env.reset(seed=k)
        env.set_element_qpos(consistent(element, env.goal_value))
        obs, reward, terminated, truncated, info = env.step(np.zeros(9, dtype=np.float32))
        assert obs[60 + k] == 1.0
        assert info["success"], TASKS[k].name
        assert terminated is True and truncated is False
        assert reward == SUCCESS_REWARD == 2800.0
        assert info["goal_distance"] < TASKS[k].threshold


@pytest.mark.slow
def test_no_success_from_initial_state(task_envs: list[KitchenTaskEnv]) -> None:
    """Idle for a while from the reset state (the off tasks' on-state must not relax to off)."""
    for k, env in enumerate(task_envs):
        env.reset(seed=k)
        for _ in range(20):
            _, reward, terminated, _, info = env.step(np.zeros(9, dtype=np.float32))
            assert not info["success"] and not terminated, TASKS[k].name
            assert -20.0 <= reward < 0.0  # range only; the formula: test_dense_reward_formula
        assert env.goal_distance() > TASKS[k].threshold + 0.2


def place_off_goal(env: KitchenTaskEnv, k: int, offset: float) -> None:
    """Put the element `offset` from its goal along the driving joint, towards the start."""
    start, goal = env.initial_value, env.goal_value
    driver = int(np.argmax(np.abs(start - goal)))
    value = goal.copy()
    value[driver] = goal[driver] + np.sign(start[driver] - goal[driver]) * offset
    env.set_element_qpos(consistent(TASKS[k].element, value))


@pytest.mark.slow
def test_just_outside_threshold_is_no_success(task_envs: list[KitchenTaskEnv]) -> None:
    for k, env in enumerate(task_envs):
        thresh = THRESHOLDS[k]
        env.reset(seed=k)
        place_off_goal(env, k, thresh + 0.05)
        _, reward, terminated, _, info = env.step(np.zeros(9, dtype=np.float32))
        assert thresh < info["goal_distance"] < thresh + 0.06, TASKS[k].name
        assert not info["success"] and not terminated, TASKS[k].name
        assert reward < 0.0


@pytest.mark.slow
def test_just_inside_threshold_is_success(task_envs: list[KitchenTaskEnv]) -> None:
    """0.05 inside the threshold (0.1 for tasks 0-2, 0.3 for the others) succeeds, terminates
    and pays the early-termination bonus 140 x 20 = 2800."""
    for k, env in enumerate(task_envs):
        thresh = THRESHOLDS[k]
        env.reset(seed=k)
        place_off_goal(env, k, thresh - 0.05)
        _, reward, terminated, _, info = env.step(np.zeros(9, dtype=np.float32))
        assert thresh - 0.06 < info["goal_distance"] < thresh, TASKS[k].name
        assert info["success"] and terminated, TASKS[k].name
        assert reward == 2800.0


# --------------------------------------------------------------------------------- reward
def test_tolerance_function() -> None:
    assert tolerance(0.05, 0.0, 0.1, 0.3) == 1.0
    assert tolerance(0.1, 0.0, 0.1, 0.3) == 1.0
    assert math.isclose(tolerance(0.4, 0.0, 0.1, 0.3), 0.1)
    assert math.isclose(tolerance(-0.3, 0.0, 0.1, 0.3), 0.1)
    assert math.isclose(tolerance(0.25, 0.0, 0.1, 0.3), 0.1**0.25)
    assert tolerance(0.2, 0.0, 0.1, 0.0) == 0.0
    # below a non-zero lower bound: the distance is lower - x (dm_control's shape)
    assert math.isclose(tolerance(0.7, 1.0, 2.0, 0.3), 0.1)
    assert math.isclose(tolerance(0.85, 1.0, 2.0, 0.3), 0.1**0.25)
    assert tolerance(1.0, 1.0, 2.0, 0.3) == 1.0 and tolerance(2.0, 1.0, 2.0, 0.3) == 1.0
    # bounds (0, 0.1), Gaussian shape with value 0.1 at the margin: 0.1 ** (distance / margin)**2,
    # evaluated once in 50-digit decimal arithmetic (the last one underflows to 0)
    for x, margin, expected in [
        (0.0, 0.5, 1.0),
        (0.13, 0.2, 0.9495109992021983),
        (0.7, 0.45, 0.01668100537200059),
        (2.0, 0.3, 7.742636826811271e-41),
        (0.35, 1e-3, 0.0),
    ]:
        got = tolerance(x, 0.0, 0.1, margin)
        assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-300), (x, margin, got)


@pytest.mark.parametrize("task", [2, 5, 8])
def test_dense_reward_formula(task: int) -> None:
    env = KitchenTaskEnv(task, seed=0)
    env.reset(seed=0)
    element = TASKS[task].element
    thresh = TASKS[task].threshold
    gripper = env.data.site("end_effector").xpos
    site = env.data.site(ELEMENT_SITES[element]).xpos
    d_goal0 = np.linalg.norm(env.data.qpos[ELEMENT_INDICES[element]] - env.goal_value)
    d_hand0 = np.linalg.norm(gripper - site)
    goal_margin, hand_margin = abs(d_goal0 - thresh), abs(d_hand0 - 0.08)
    # put the element halfway between the start and the success threshold
    fraction = 1.0 - (thresh + 0.5 * (d_goal0 - thresh)) / d_goal0
    partial = env.initial_value + fraction * (env.goal_value - env.initial_value)
    env.set_element_qpos(consistent(element, partial))
    _, reward, terminated, _, info = env.step(np.full(9, 0.3, dtype=np.float32))
    assert not terminated
    d_goal = np.linalg.norm(env.data.qpos[ELEMENT_INDICES[element]] - env.goal_value)
    d_hand = np.linalg.norm(env.data.site("end_effector").xpos - site)
    assert d_goal > thresh
    in_place = gaussian_tol(d_goal, thresh, goal_margin)
    reach = gaussian_tol(d_hand, 0.08, hand_margin)
    expected = 20.0 * (0.4 * in_place + 0.6 * reach - 1.0)
    assert math.isclose(reward, expected, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(info["in_place"], in_place, rel_tol=1e-9)
    assert 0.1 < in_place < 1.0  # genuinely inside the shaped region
    env.close()


def test_first_step_reward_near_minus_18() -> None:
    """At reset both distances sit exactly at their margins (tolerance 0.1): 20*(0.1-1) = -18."""
    env = KitchenTaskEnv(0, seed=0)
    env.reset(seed=0)
    reward, in_place, reach = env.dense_reward(env.goal_distance(), env.hand_distance())
    assert math.isclose(in_place, 0.1) and math.isclose(reach, 0.1)
    assert math.isclose(reward, -18.0)
    env.close()


def test_sparse_tasks(family: KitchenMTEasyEnv) -> None:
    fam = family
    env = fam.make_task_env(4, seed=0, evaluation=False, sparse_tasks=(4,))
    dense = fam.make_task_env(6, seed=0, evaluation=False, sparse_tasks=(4,))
    env.reset(seed=0)
    dense.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(9, dtype=np.float32))
    assert reward == 0.0 and not terminated and not info["success"]
    assert dense.step(np.zeros(9, dtype=np.float32))[1] < 0.0
    env.set_element_qpos(consistent("bottom burner", ELEMENT_ON["bottom burner"]))
    _, reward, terminated, _, info = env.step(np.zeros(9, dtype=np.float32))
    assert reward == 1.0 and terminated and info["success"]
    with pytest.raises(ValueError):
        fam.make_task_env(0, seed=0, evaluation=False, sparse_tasks=(10,))
    with pytest.raises(TypeError):
        fam.make_task_env(0, seed=0, evaluation=False, bogus=1)
    env.close()
    dense.close()


def test_family_plays_as_gym_env(family: KitchenMTEasyEnv) -> None:
    fam = family
    obs, info = fam.reset(seed=0, options={"task": 7})
    assert obs.shape == (70,) and info["task_id"] == 7 and fam.task_id(obs) == 7
    obs, reward, terminated, truncated, info = fam.step(np.zeros(9, dtype=np.float32))
    assert info["task_id"] == 7 and not truncated and not terminated
    assert -20.0 <= reward <= 0.0  # range only; the formula: test_dense_reward_formula
    fam.close()


# --------------------------------------------------------------------------------- render
@pytest.mark.slow
def test_render_rgb_array(monkeypatch: pytest.MonkeyPatch, family: KitchenMTEasyEnv) -> None:
    monkeypatch.setenv("MESA_SHADER_CACHE_DISABLE", "true")
    env = family.make_task_env(0, seed=0, evaluation=True, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.zeros(9, dtype=np.float32))
    frame = env.render()
    env.close()
    assert frame.shape == (240, 240, 3) and frame.dtype == np.uint8
    assert frame.std() > 10  # an actual image
    # upright: the blue wall cabinets fill the top rows, the grey counter the bottom rows (an
    # upside-down frame swaps them)
    img = frame.astype(np.float64)
    blue_excess = img[..., 2] - img[..., 0]
    assert blue_excess[:40].mean() > blue_excess[-40:].mean() + 10.0
    plain = family.make_task_env(0, seed=0, evaluation=False)
    assert plain.render() is None
    plain.close()
