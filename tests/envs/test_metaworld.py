"""MetaWorldCDS-v1, MetaWorldMT10-v2, MetaWorldMT50-v2: spaces, one-hot, configuration cycling,
seeding, success driven by simulator state, rewards against stock Meta-World, rendering."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import mujoco
import numpy as np
import pytest
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.envs.sawyer_door_close_v3 import SawyerDoorCloseEnvV3
from metaworld.envs.sawyer_door_v3 import SawyerDoorEnvV3
from metaworld.envs.sawyer_drawer_close_v3 import SawyerDrawerCloseEnvV3
from metaworld.envs.sawyer_drawer_open_v3 import SawyerDrawerOpenEnvV3
from metaworld.types import Task

from environments.metaworld_cds import (
    CDS_TASK_CLASSES,
    DOOR_POS,
    DOOR_QUAT,
    DRAWER_POS,
    DRAWER_QUAT,
    GOAL,
    CDSTaskEnv,
    MetaWorldCDSEnv,
    sample_configs,
)
from environments.metaworld_mt import (
    MT10_ENV_NAMES,
    MT50_ENV_NAMES,
    ConfigCycle,
    MetaWorldMT10Env,
    MetaWorldMT50Env,
    MetaWorldTaskEnv,
    benchmark_tasks,
    single_task_configs,
)
from experiment_utils import env_config

HP_KEYS = {
    "n_epochs",
    "batch_size",
    "steps_per_epoch",
    "gradient_steps_per_itr",
    "buffer_batch_size",
    "min_buffer_size",
    "lr",
    "hidden_sizes",
    "num_evaluation_episodes",
}
MT10_TASKS = (
    "reach",
    "push",
    "pick-place",
    "door-open",
    "drawer-open",
    "drawer-close",
    "button-press-topdown",
    "peg-insert-side",
    "window-open",
    "window-close",
)
DRAWER_QPOS, DOOR_QPOS = 9, 10  # in the CDS scene (drawer body first)
DRAWER_JOINT, DOOR_JOINT = "goal_slidey", "doorjoint"


# ------------------------------------------------------------------------------ helpers
def set_joint(env: CDSTaskEnv | MetaWorldTaskEnv, joint: str, value: float) -> None:
    """Put one object joint at `value` (at rest) without stepping."""
    inner = env.inner
    qpos = inner.data.qpos.copy()
    qpos[inner.model.joint(joint).qposadr[0]] = value
    inner.set_state(qpos, np.zeros_like(inner.data.qvel))


def place_tcp(env: MetaWorldTaskEnv, target: np.ndarray) -> None:
    """Drive the gripper centre onto `target` with the mocap (as Meta-World's hand reset does)."""
    inner = env.inner
    for _ in range(3):
        mocap = np.asarray(target) + (inner.data.body("hand").xpos - inner.tcp_center)
        for _ in range(60):
            inner.data.mocap_pos[0] = mocap
            inner.data.mocap_quat[0] = (1.0, 0.0, 1.0, 0.0)
            inner.do_simulation([-1.0, 1.0], inner.frame_skip)


def zero_step(env: CDSTaskEnv | MetaWorldTaskEnv) -> tuple[np.ndarray, float, dict]:
    obs, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
    assert not terminated and not truncated
    assert isinstance(info["success"], bool)
    return obs, reward, info


@pytest.fixture
def cds_envs() -> Iterator[list[CDSTaskEnv]]:
    envs = [CDSTaskEnv(k, sample_configs(k, 0), seed=k) for k in range(4)]
    yield envs
    for env in envs:
        env.close()


def reach_env(seed: int = 0, **kwargs) -> MetaWorldTaskEnv:
    return MetaWorldTaskEnv("reach-v3", single_task_configs("reach-v3", 0), 0, 10, seed, **kwargs)


# ------------------------------------------------------------------------------ CDS
def test_cds_family_attributes() -> None:
    fam = MetaWorldCDSEnv(seed=0)
    assert fam.task_names == ("door-open", "door-close", "drawer-open", "drawer-close")
    assert (fam.num_tasks, fam.obs_dim, fam.action_dim) == (4, 25, 4)
    assert fam.horizon == 500 and fam.min_reward == 0.0 and fam.onehot_mode == "zero"
    assert fam.onehot_start == 21 and fam.network_obs_dim() == 25
    assert set(env_config("MetaWorldCDS-v1")[0]) == HP_KEYS
    assert env_config("MetaWorldCDS-v1")[0]["batch_size"] == 2000
    assert env_config("MetaWorldCDS-v1")[0]["gradient_steps_per_itr"] == 200
    assert env_config("MetaWorldCDS-v1")[0]["num_evaluation_episodes"] == 40
    assert fam.action_space.low.min() == -1.0 and fam.action_space.high.max() == 1.0
    fam.close()


def test_cds_onehot_split_and_play_mode() -> None:
    fam = MetaWorldCDSEnv(seed=3)
    envs = fam.get_train_envs()
    obs = np.stack([env.reset()[0] for env in envs])
    assert obs.dtype == np.float32 and obs.shape == (4, 25)
    np.testing.assert_array_equal(obs[:, 21:], np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(fam.task_id(obs), np.arange(4))
    net = fam.split_observation(obs)
    assert net.shape == (4, 25) and not net[:, 21:].any()
    np.testing.assert_array_equal(net[:, :21], obs[:, :21])
    o, _ = fam.reset(options={"task": 2})
    assert fam.task_id(o) == 2
    assert fam.step(fam.action_space.sample())[0].shape == (25,)
    for env in envs:
        env.close()
    fam.close()


def test_cds_configurations() -> None:
    for k, cls in enumerate(CDS_TASK_CLASSES):
        configs = sample_configs(k, 0)
        assert configs.shape == (50, 3) and len(np.unique(configs, axis=0)) == 50
        assert (configs >= np.array(cls.object_low)).all()
        assert (configs <= np.array(cls.object_high)).all()
        np.testing.assert_array_equal(configs, sample_configs(k, 0))
        assert not np.array_equal(configs, sample_configs(k, 100))
    door = sample_configs(0, 0)
    assert door[:, 0].min() < -0.09 and door[:, 0].max() > -0.01 and (door[:, 2] == 0.15).all()
    drawer = sample_configs(2, 0)
    assert drawer[:, 0].min() < 0.31 and drawer[:, 0].max() > 0.39 and (drawer[:, 1] == 0.9).all()
    # the family's evaluation envs use the benchmark of seed + 100
    fam = MetaWorldCDSEnv(seed=5)
    train, test = fam.get_train_envs(), fam.get_test_envs()
    for k in range(4):
        np.testing.assert_array_equal(train[k].configs, sample_configs(k, 5))
        np.testing.assert_array_equal(test[k].configs, sample_configs(k, 105))
    for env in train + test:
        env.close()


def test_cds_observation_layout_and_reset_state(cds_envs: list[CDSTaskEnv]) -> None:
    offsets = {
        0: np.array([-0.3, -0.45, 0.0]),
        1: np.array([0.2, -0.2, 0.0]),
        2: np.array([0.0, -0.36, 0.09]),
        3: np.array([0.0, -0.16, 0.09]),
    }
    for k, env in enumerate(cds_envs):
        obs, info = env.reset()
        cfg = env.configs[info["config"]]
        data = env.inner.data
        np.testing.assert_allclose(obs[GOAL], cfg + offsets[k], atol=1e-6)
        np.testing.assert_allclose(obs[:3], CDS_TASK_CLASSES[k].hand_start, atol=0.02)
        handle = data.body("drawer_link").xpos + np.array([0.0, -0.16, 0.0])
        np.testing.assert_allclose(obs[DRAWER_POS], handle, atol=1e-6)
        np.testing.assert_allclose(obs[DOOR_POS], data.geom("handle").xpos, atol=1e-6)
        for quat in (obs[DRAWER_QUAT], obs[DOOR_QUAT]):
            assert abs(np.linalg.norm(quat) - 1.0) < 1e-5
        # wxyz for both: the drawer slides without turning, so its quaternion is the identity
        np.testing.assert_allclose(obs[DRAWER_QUAT], [1, 0, 0, 0], atol=1e-6)
        door_body = env.inner.model.body("door").pos
        drawer_body = env.inner.model.body("drawer").pos
        if k < 2:  # the door moves, the drawer stays at its default place, closed
            np.testing.assert_allclose(door_body, cfg)
            np.testing.assert_allclose(drawer_body, [0.4, 0.9, 0.0])
            assert abs(data.qpos[DRAWER_QPOS]) < 1e-3
        else:
            np.testing.assert_allclose(drawer_body, cfg)
            np.testing.assert_allclose(door_body, [-0.1, 0.9, 0.15])
            assert abs(data.qpos[DOOR_QPOS]) < 1e-3
    assert abs(cds_envs[1].inner.data.qpos[DOOR_QPOS] + np.pi / 2) < 1e-3  # door-close: open
    assert abs(cds_envs[3].inner.data.qpos[DRAWER_QPOS] + 0.15) < 1e-3  # drawer-close: out


# (task, joint, solved value, unsolved value)
CDS_STATES = [
    (0, DOOR_JOINT, -np.pi / 2, -0.6),
    (1, DOOR_JOINT, 0.0, -0.6),
    (2, DRAWER_JOINT, -0.16, -0.1),
    (3, DRAWER_JOINT, 0.0, -0.1),
]


@pytest.mark.parametrize(("task", "joint", "solved", "unsolved"), CDS_STATES)
def test_cds_success_driven_by_state(
    cds_envs: list[CDSTaskEnv], task: int, joint: str, solved: float, unsolved: float
) -> None:
    env = cds_envs[task]
    for config in (0, 17):
        env.reset(options={"config": config})
        _, reward, info = zero_step(env)
        # range only; the rewards themselves: test_cds_rewards_match_stock_metaworld
        assert not info["success"] and 0.0 <= reward <= 10.0
        set_joint(env, joint, unsolved)
        _, reward, info = zero_step(env)
        assert not info["success"] and reward < 10.0
        set_joint(env, joint, solved)
        obs, reward, info = zero_step(env)
        assert info["success"] and info["task_id"] == task
        if task in (0, 1, 3):  # these base rewards pay the maximum on success
            assert reward == 10.0
    # the other object's joint never counts: open the drawer in a door task and vice versa
    other = DRAWER_JOINT if joint == DOOR_JOINT else DOOR_JOINT
    env.reset(options={"config": 0})
    set_joint(env, other, -0.16 if other == DRAWER_JOINT else -np.pi / 2)
    assert not zero_step(env)[2]["success"]


STOCK = (SawyerDoorEnvV3, SawyerDoorCloseEnvV3, SawyerDrawerOpenEnvV3, SawyerDrawerCloseEnvV3)


def test_cds_workspace_is_metaworlds(cds_envs: list[CDSTaskEnv]) -> None:
    """The hand's bounds are each base task's, as in the original; door-close starts outside them
    (x = -0.6) and its first step clips the mocap target back to x = -0.5."""
    for task, env in enumerate(cds_envs):
        stock = STOCK[task]()
        np.testing.assert_array_equal(env.inner.mocap_low, stock.mocap_low)
        np.testing.assert_array_equal(env.inner.mocap_high, stock.mocap_high)
        stock.close()
    door_close = cds_envs[1]
    obs, _ = door_close.reset(options={"config": 0})
    assert obs[0] < -0.55  # the hand, pulled towards its start (-0.6) by the mocap weld
    door_close.step(np.array([-1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    assert door_close.inner.data.mocap_pos[0, 0] == pytest.approx(-0.5)


@pytest.mark.parametrize("task", range(4))
def test_cds_rewards_match_stock_metaworld(cds_envs: list[CDSTaskEnv], task: int) -> None:
    """Same rewards, success and object state as the stock single-object Meta-World task placed
    the same way (the arm never touches the other object here)."""
    env = cds_envs[task]
    cfg = env.configs[7]
    data = {"env_cls": STOCK[task], "rand_vec": cfg, "partially_observable": False}
    stock = STOCK[task]()
    stock.set_task(Task(env_name="stock", data=pickle.dumps(data)))
    stock.hand_init_pos = np.array(CDS_TASK_CLASSES[task].hand_start)
    stock.mocap_low = env.inner.mocap_low.copy()
    obs, _ = env.reset(options={"config": 7})
    stock.reset()
    primary = DOOR_POS if task < 2 else DRAWER_POS
    raise_z = np.array([0.0, 0.0, 0.05 if task == 3 else 0.0])  # drawer-close's raised handle
    rng = np.random.default_rng(task)
    rewards = []
    for _ in range(60):
        action = rng.uniform(-1, 1, 4)
        obs, reward, _, _, info = env.step(action.astype(np.float32))
        s_obs, s_reward, _, _, s_info = stock.step(action.astype(np.float32))
        assert reward == pytest.approx(s_reward, rel=1e-6, abs=1e-6)
        assert info["success"] == bool(s_info["success"])
        np.testing.assert_allclose(obs[primary] + raise_z, s_obs[4:7], atol=1e-5)
        np.testing.assert_allclose(obs[3], s_obs[3], atol=1e-5)
        rewards.append(reward)
    if task < 2:  # stock door tasks report scipy's xyzw; ours is wxyz
        np.testing.assert_allclose(obs[DOOR_QUAT], np.roll(s_obs[7:11], 1), atol=1e-5)
    assert len(set(np.round(rewards, 9))) > 5  # the shaped reward actually moved
    stock.close()


def test_cds_tasks_never_terminate_or_truncate_themselves(cds_envs: list[CDSTaskEnv]) -> None:
    """Success does not end a CDS episode and the env sets no time limit of its own (the
    sampler cuts episodes at the 500-step horizon); the raw Meta-World env would raise past
    500 steps."""
    for env in cds_envs:
        env.reset(seed=0)
        for _ in range(505):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            assert terminated is False and truncated is False and "success" in info


def test_cds_seeded_determinism() -> None:
    def rollout(seed: int) -> np.ndarray:
        fam = MetaWorldCDSEnv(seed=seed)
        env = fam.get_train_envs()[1]
        rng = np.random.default_rng(0)
        out = []
        for _ in range(2):
            out.append(env.reset()[0])
            for _ in range(15):
                out.append(env.step(rng.uniform(-1, 1, 4).astype(np.float32))[0])
        env.close()
        return np.stack(out)

    a, b = rollout(11), rollout(11)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rollout(12))


# ------------------------------------------------------------------------------ MT10 / MT50
def test_config_cycle_permutations() -> None:
    cycle = ConfigCycle(50, seed=4)
    first = [cycle.next() for _ in range(50)]
    second = [cycle.next() for _ in range(50)]
    assert sorted(first) == list(range(50)) and sorted(second) == list(range(50))
    assert first != second and first != list(range(50))
    again = ConfigCycle(50, seed=4)
    assert [again.next() for _ in range(50)] == first


def test_mt_reach_config_cycling_and_seeding() -> None:
    env_a, env_b, env_c = reach_env(seed=1), reach_env(seed=1), reach_env(seed=2)
    goals_a = [env_a.reset()[0][36:39] for _ in range(50)]
    goals_b = [env_b.reset()[0][36:39] for _ in range(50)]
    goals_c = [env_c.reset()[0][36:39] for _ in range(50)]
    assert len(np.unique(np.round(goals_a, 6), axis=0)) == 50  # every configuration once
    np.testing.assert_array_equal(goals_a, goals_b)  # same seed, same order
    assert not np.array_equal(goals_a, goals_c)  # another seed, another order
    expected = {tuple(np.round(pickle.loads(t.data)["rand_vec"][3:], 5)) for t in env_a.configs}
    assert {tuple(np.round(g.astype(np.float64), 5)) for g in goals_a} == expected
    # reset(seed=...) restarts the cycle reproducibly
    first = env_a.reset(seed=9)[0]
    np.testing.assert_array_equal(first, env_c.reset(seed=9)[0])
    for env in (env_a, env_b, env_c):
        env.close()


def test_mt_reach_success_driven_by_state() -> None:
    env = reach_env()
    obs, info = env.reset(options={"config": 3})
    assert obs.shape == (49,) and obs.dtype == np.float32 and obs[39] == 1.0
    assert obs[40:].sum() == 0.0
    _, reward, info = zero_step(env)
    assert not info["success"] and info["task_id"] == 0
    place_tcp(env, env.goal + np.array([0.0, 0.0, 0.12]))  # above the goal: not yet
    assert not zero_step(env)[2]["success"]
    place_tcp(env, env.goal)
    obs, reward, info = zero_step(env)
    assert info["success"] and reward > 9.0
    np.testing.assert_allclose(obs[36:39], env.goal, atol=1e-6)
    env.close()


@pytest.mark.parametrize(
    ("name", "joint", "solved"),
    [("drawer-close-v3", DRAWER_JOINT, 0.0), ("door-open-v3", DOOR_JOINT, -np.pi / 2)],
)
def test_mt_object_task_success_driven_by_state(name: str, joint: str, solved: float) -> None:
    task = MT10_ENV_NAMES.index(name)
    env = MetaWorldTaskEnv(name, single_task_configs(name, 0), task, 10, seed=0)
    for config in (0, 21):
        obs, _ = env.reset(options={"config": config})
        assert obs[39 + task] == 1.0
        assert not zero_step(env)[2]["success"]
        set_joint(env, joint, solved)
        _, reward, info = zero_step(env)
        assert info["success"] and reward == 10.0
    env.close()


def test_mt_no_limit_or_termination_past_horizon() -> None:
    env = reach_env()
    env.reset()
    for _ in range(520):  # the raw Meta-World env would raise after 500
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and not truncated and "success" in info
    env.reset()
    env.close()


def test_mt_seeded_determinism() -> None:
    def rollout(seed: int) -> np.ndarray:
        env = MetaWorldTaskEnv("push-v3", single_task_configs("push-v3", 0), 1, 10, seed=seed)
        rng = np.random.default_rng(0)
        out = [env.reset(seed=seed)[0]]
        out += [env.step(rng.uniform(-1, 1, 4).astype(np.float32))[0] for _ in range(20)]
        env.close()
        return np.stack(out)

    np.testing.assert_array_equal(rollout(4), rollout(4))
    assert not np.array_equal(rollout(4), rollout(5))


@pytest.mark.slow
def test_mt10_family() -> None:
    fam = MetaWorldMT10Env(seed=0)
    assert fam.task_names == MT10_TASKS
    assert (fam.num_tasks, fam.obs_dim, fam.action_dim, fam.onehot_start) == (10, 49, 4, 39)
    assert fam.horizon == 500 and fam.min_reward == 0.0 and fam.onehot_mode == "zero"
    hp = env_config("MetaWorldMT10-v2")[0]
    assert set(hp) == HP_KEYS
    assert (hp["n_epochs"], hp["batch_size"], hp["steps_per_epoch"]) == (1000, 5000, 10)
    assert (hp["gradient_steps_per_itr"], hp["buffer_batch_size"]) == (500, 2560)
    assert (hp["min_buffer_size"], hp["lr"], hp["hidden_sizes"]) == (5000, 1.5e-3, [256, 256])
    assert hp["num_evaluation_episodes"] == 100
    train, test = fam.get_train_envs(), fam.get_test_envs()
    obs = np.stack([env.reset()[0] for env in train])
    np.testing.assert_array_equal(obs[:, 39:], np.eye(10, dtype=np.float32))
    np.testing.assert_array_equal(fam.task_id(obs), np.arange(10))
    net = fam.split_observation(obs)
    assert net.shape == (10, 49) and not net[:, 39:].any()
    np.testing.assert_array_equal(net[:, :39], obs[:, :39])
    bench0, bench100 = benchmark_tasks("MT10", 0), benchmark_tasks("MT10", 100)
    for k, (tr, te) in enumerate(zip(train, test, strict=True)):
        assert tr.env_name == te.env_name == MT10_ENV_NAMES[k]
        assert tr.configs == bench0[tr.env_name] and te.configs == bench100[te.env_name]
        assert len(tr.configs) == 50 and tr.configs != te.configs
        # the stock Meta-World task with the same configuration gives the same observations,
        # rewards and success
        stock = ALL_V3_ENVIRONMENTS[tr.env_name]()
        stock.set_task(tr.configs[tr.config_index])
        s_obs, _ = stock.reset()
        np.testing.assert_allclose(obs[k, :39], s_obs, atol=1e-6)
        rng = np.random.default_rng(k)
        for _ in range(5):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            t_obs, reward, _, _, info = tr.step(action)
            s_obs, s_reward, _, _, s_info = stock.step(action)
            np.testing.assert_allclose(t_obs[:39], s_obs, atol=1e-6)
            assert reward == pytest.approx(s_reward, rel=1e-6, abs=1e-6)
            assert info["success"] == bool(s_info["success"])
        stock.close()
    for env in train + test:
        env.close()


@pytest.mark.slow
def test_fast_benchmark_build_equals_metaworld() -> None:
    fast, exact = benchmark_tasks("MT10", 7), benchmark_tasks("MT10", 7, fast=False)
    assert list(fast) == list(exact) == list(MT10_ENV_NAMES)
    for name in fast:
        for a, b in zip(fast[name], exact[name], strict=True):
            vec_a, vec_b = pickle.loads(a.data)["rand_vec"], pickle.loads(b.data)["rand_vec"]
            np.testing.assert_array_equal(vec_a, vec_b)


@pytest.mark.slow
def test_mt50_family() -> None:
    fam = MetaWorldMT50Env(seed=0)
    assert fam.task_names[:4] == ("assembly", "basketball", "bin-picking", "box-close")
    assert fam.task_names[-2:] == ("window-open", "window-close")
    assert (fam.num_tasks, fam.obs_dim, fam.action_dim, fam.onehot_start) == (50, 89, 4, 39)
    hp = env_config("MetaWorldMT50-v2")[0]
    assert set(hp) == HP_KEYS
    assert (hp["batch_size"], hp["steps_per_epoch"], hp["gradient_steps_per_itr"]) == (
        25000,
        8,
        2500,
    )
    assert (hp["buffer_batch_size"], hp["min_buffer_size"], hp["lr"]) == (1280, 1500, 3e-4)
    assert (hp["hidden_sizes"], hp["num_evaluation_episodes"]) == ([400, 400], 250)
    envs = fam.get_train_envs()
    for k, env in enumerate(envs):
        assert env.env_name == MT50_ENV_NAMES[k] and len(env.configs) == 50
        obs, _ = env.reset()
        assert obs.shape == (89,) and fam.task_id(obs) == k
        zero_step(env)
        env.close()


# ------------------------------------------------------------------------------ rendering
def _marker_pixel(env: CDSTaskEnv | MetaWorldTaskEnv, pos: np.ndarray) -> np.ndarray:
    """Row/column of a magenta ball drawn at world position `pos` (uses the goal site)."""
    model, data = env.inner.model, env.inner.data
    site = model.site("goal").id
    model.site_pos[site] = pos
    model.site_size[site] = 0.03
    model.site_rgba[site] = (1.0, 0.0, 1.0, 1.0)
    mujoco.mj_forward(model, data)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (240, 240, 3)
    mask = (frame[..., 0] > 180) & (frame[..., 2] > 180) & (frame[..., 1] < 80)
    assert mask.sum() > 10, "marker not visible"
    return np.argwhere(mask).mean(axis=0)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cds", "mt"])
def test_render_upright_and_not_mirrored(family: str) -> None:
    """World up must point up in the frame and the viewer's right to the right."""
    if family == "cds":
        env = CDSTaskEnv(2, sample_configs(2, 0), seed=0, render_mode="rgb_array")
    else:
        env = reach_env(render_mode="rgb_array")
    try:
        env.reset()
        cam = env.inner.data.cam_xmat[env._camera_id].reshape(3, 3)
        view = -cam[:, 2]
        right = np.cross(view, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        base = np.array([0.0, 0.6, 0.3]) - 0.4 * view  # between the camera and the arm
        row0, col0 = _marker_pixel(env, base)
        row_up, col_up = _marker_pixel(env, base + np.array([0.0, 0.0, 0.15]))
        _, col_right = _marker_pixel(env, base + 0.15 * right)
        assert row_up < row0 - 10 and abs(col_up - col0) < 5
        assert col_right > col0 + 10
    finally:
        env.close()
