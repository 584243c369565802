"""Tests of MazeLarge-10-v0 (environments/maze.py): layout, frames, spaces, rewards, success."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from environments.maze import (
    GOAL_RADIUS,
    HORIZON,
    MAZE_MAP,
    NUM_TASKS,
    TASKS,
    MazeLarge10Env,
    MazeLargeTaskEnv,
    d4rl_to_robotics_xy,
    qpos_to_cell,
)
from experiment_utils import env_config

# D4RL's LARGE_MAZE layout, row 0 at the top.
SPEC_LAYOUT = """
############
#OOOO#OOOOO#
#O##O#O#O#O#
#OOOOOO#OOO#
#O####O###O#
#OO#O#OOOOO#
##O#O#O#O###
#OO#OOO#OGO#
############
"""

SPEC_TASKS = [
    ((1, 3), (5, 8)),
    ((1, 10), (2, 4)),
    ((4, 1), (1, 7)),
    ((7, 4), (4, 10)),
    ((1, 3), (7, 4)),
    ((1, 7), (7, 10)),
    ((5, 4), (7, 9)),
    ((7, 1), (2, 6)),
    ((1, 2), (3, 10)),
    ((7, 2), (6, 8)),
]

ZERO = np.zeros(2, dtype=np.float32)


@pytest.fixture(scope="module")
def family() -> MazeLarge10Env:
    return MazeLarge10Env(seed=0)


@pytest.fixture(scope="module")
def train_envs(family: MazeLarge10Env) -> list[MazeLargeTaskEnv]:
    envs = family.get_train_envs()
    yield envs
    for env in envs:
        env.close()


# --------------------------------------------------------------------------- layout and frames
def test_layout_and_tasks_match_spec() -> None:
    rows = SPEC_LAYOUT.strip().splitlines()
    expected = tuple(tuple(1 if ch == "#" else 0 for ch in row) for row in rows)
    assert MAZE_MAP == expected
    assert [tuple(map(tuple, t)) for t in TASKS] == SPEC_TASKS


@pytest.mark.parametrize("task", range(NUM_TASKS))
def test_start_and_goal_are_free_cells(task: int) -> None:
    """qpos (r, c) of a task's start or goal lies in layout cell (r, c), which is free, in both
    frames."""
    from gymnasium_robotics.envs.maze.maps import LARGE_MAZE
    from gymnasium_robotics.envs.maze.maze_v4 import Maze

    robotics_maze = Maze(LARGE_MAZE, maze_size_scaling=1.0, maze_height=0.4)  # writes no file
    for r, c in TASKS[task]:
        point = np.array([r, c], dtype=np.float64)
        assert qpos_to_cell(point) == (r, c)
        assert MAZE_MAP[r][c] == 0
        # gymnasium-robotics' own cell lookup agrees with our frame mapping
        assert tuple(robotics_maze.cell_xy_to_rowcol(d4rl_to_robotics_xy(point))) == (r, c)
    # the whole reset box (start +- 0.1, plus the particle radius 0.1) stays inside the start cell
    start = np.array(TASKS[task][0], dtype=np.float64)
    for corner in ([-0.2, -0.2], [-0.2, 0.2], [0.2, -0.2], [0.2, 0.2]):
        assert qpos_to_cell(start + np.array(corner)) == TASKS[task][0]


@pytest.mark.parametrize("cell", [(1, 3), (5, 8), (7, 10)])
def test_cells_are_unit_squares_shifted_by_the_documented_offset(cell: tuple[int, int]) -> None:
    """D4RL's 0.2 offset: layout cell (r, c) holds qpos x in [r - 0.7, r + 0.3) and y in
    [c - 0.7, c + 0.3) (a wall block of half size 0.5 at world (r + 1, c + 1), the particle
    body at world (1.2, 1.2))."""
    r, c = cell
    inside = [(r - 0.69, c - 0.69), (r + 0.29, c + 0.29), (r - 0.69, c + 0.29), (r, c)]
    for x, y in inside:
        assert qpos_to_cell(np.array([x, y])) == (r, c), (x, y)
    assert qpos_to_cell(np.array([r + 0.31, c])) == (r + 1, c)
    assert qpos_to_cell(np.array([r - 0.71, c])) == (r - 1, c)
    assert qpos_to_cell(np.array([r, c + 0.31])) == (r, c + 1)
    assert qpos_to_cell(np.array([r, c - 0.71])) == (r, c - 1)


def test_wall_geometry_blocks_the_point() -> None:
    """Cell (0, 3) is a wall spanning qpos x in [-0.7, 0.3]: pushing up from (1, 3) stops there."""
    env = MazeLargeTaskEnv(0, seed=0)
    env.reset(seed=0)
    env.set_point(np.array([1.0, 3.0]))
    for _ in range(200):
        obs, *_ = env.step(np.array([-1.0, 0.0], dtype=np.float32))
    assert 0.35 < obs[0] < 0.45  # wall face at 0.3 + particle radius 0.1
    assert abs(obs[1] - 3.0) < 0.05
    # and free space really is free: pushing down (+x) from (1, 1) reaches row 3
    env.set_point(np.array([1.0, 1.0]))
    for _ in range(60):
        obs, *_ = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert obs[0] > 2.0
    env.close()


def test_dynamics_match_gymnasium_robotics_point_maze(tmp_path, monkeypatch) -> None:
    """Our model in D4RL's frame reproduces PointMaze_Large-v3 under the documented mapping."""
    import gymnasium as gym
    import gymnasium_robotics

    # PointMazeEnv leaves its XML in the temp dir: point that at pytest's tmp_path
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gym.register_envs(gymnasium_robotics)
    task = 4
    mine = MazeLargeTaskEnv(task, seed=0)
    mine.reset(seed=0)
    ref = gym.make("PointMaze_Large-v3", continuing_task=False).unwrapped
    ref.position_noise_range = 0.0
    ref.reset(seed=0, options={"reset_cell": np.array(TASKS[task][0])})
    qvel = mine.data.qvel
    ref.point_env.set_state(d4rl_to_robotics_xy(mine.data.qpos), np.array([qvel[1], -qvel[0]]))
    rng = np.random.default_rng(0)
    contacts = 0
    for t in range(300):
        a = rng.uniform(-1.0, 1.0, 2).astype(np.float32)
        if t % 50 < 25:  # bang-bang phases drive the point into walls
            a = np.sign(a).astype(np.float32)
        mine.step(a)
        ref_obs, *_ = ref.step(np.array([a[1], -a[0]], dtype=np.float32))
        contacts += mine.data.ncon > 1  # more than the ground contact
        assert np.allclose(
            d4rl_to_robotics_xy(mine.data.qpos), ref_obs["observation"][:2], atol=1e-6
        ), t
    assert contacts > 0  # the comparison exercised wall contacts
    mine.close()
    ref.close()


def test_construction_leaves_no_temp_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = MazeLargeTaskEnv(1, seed=0)
    env.reset()
    env.close()
    family = MazeLarge10Env(seed=0)
    for e in family.get_test_envs():
        e.close()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- family interface
def test_family_attributes(family: MazeLarge10Env) -> None:
    assert family.num_tasks == NUM_TASKS == 10
    assert len(set(family.task_names)) == 10
    assert family.horizon == HORIZON == 600
    assert GOAL_RADIUS == 0.5
    assert family.min_reward == -1.0
    assert family.onehot_mode == "slice"
    assert family.obs_dim == 14
    assert family.action_dim == 2
    assert family.onehot_start == 4
    assert family.network_obs_dim() == 4
    assert family.network_obs_dim(include_task_id=True) == 14
    assert env_config("MazeLarge-10-v0")[0] == {
        "n_epochs": 2000,
        "batch_size": 6000,
        "steps_per_epoch": 1,
        "gradient_steps_per_itr": 1000,
        "buffer_batch_size": 256,
        "min_buffer_size": 3000,
        "lr": 3e-4,
        "hidden_sizes": [256, 256],
        "num_evaluation_episodes": 100,
    }


def test_spaces_onehot_and_split(family: MazeLarge10Env, train_envs: list) -> None:
    assert len(train_envs) == 10
    batch = []
    for k, env in enumerate(train_envs):
        assert env.observation_space.shape == (14,)
        assert env.observation_space.dtype == np.float32
        assert env.action_space.shape == (2,)
        assert env.action_space.dtype == np.float32
        assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
        obs, info = env.reset(seed=k)
        assert obs.dtype == np.float32 and obs.shape == (14,)
        assert env.observation_space.contains(obs)
        assert info["task_id"] == k and info["success"] is False
        onehot = np.zeros(10, dtype=np.float32)
        onehot[k] = 1.0
        np.testing.assert_array_equal(obs[4:], onehot)
        assert family.task_id(obs) == k
        batch.append(obs)
    batch = np.stack(batch)
    np.testing.assert_array_equal(family.task_id(batch), np.arange(10))
    net_in = family.split_observation(batch)
    assert net_in.shape == (10, 4)
    np.testing.assert_array_equal(net_in, batch[:, :4])
    assert family.split_observation(batch, include_task_id=True).shape == (10, 14)


def test_reset_distribution() -> None:
    env = MazeLargeTaskEnv(7, seed=0)
    start = np.array(TASKS[7][0], dtype=np.float64)
    obs = np.stack([env.reset()[0] for _ in range(400)])
    pos, vel = obs[:, :2], obs[:, 2:4]
    assert np.all(np.abs(pos - start) <= 0.1 + 1e-6)
    assert np.all(np.abs(pos - start).max(axis=0) > 0.09)  # uniform noise actually spans the box
    assert np.all(np.abs(vel.mean(axis=0)) < 0.03)
    assert np.all((vel.std(axis=0) > 0.085) & (vel.std(axis=0) < 0.115))
    np.testing.assert_allclose(obs[-1, :2], env.data.qpos, atol=1e-6)
    np.testing.assert_allclose(obs[-1, 2:4], env.data.qvel, atol=1e-6)
    env.close()


def test_step_contract(train_envs: list) -> None:
    env = train_envs[8]  # a long task: random actions do not reach the goal in a few steps
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2))
        assert obs.dtype == np.float32 and obs.shape == (14,)
        assert isinstance(reward, float) and -1.0 < reward <= 0.0
        assert terminated is False and truncated is False
        assert info["success"] is False and info["task_id"] == 8
        np.testing.assert_allclose(obs[:2], env.data.qpos, atol=1e-6)


def test_actions_and_velocity_are_clipped() -> None:
    a = MazeLargeTaskEnv(2, seed=0)
    b = MazeLargeTaskEnv(2, seed=0)
    for env in (a, b):
        env.reset(seed=0)
        env.set_point(np.array([3.0, 3.0]))
    obs_a, *_ = a.step(np.array([5.0, -7.0]))
    obs_b, *_ = b.step(np.array([1.0, -1.0]))
    np.testing.assert_array_equal(obs_a, obs_b)
    # a velocity far above 5 is clipped to 5 before the step; one step adds < 0.25
    a.set_point(np.array([3.0, 3.0]), velocity=np.array([0.0, 40.0]))
    obs, *_ = a.step(ZERO)
    assert 4.0 < obs[3] <= 5.0
    a.close()
    b.close()


def test_seeded_determinism() -> None:
    def rollout(envs: list, seed: int) -> np.ndarray:
        rng = np.random.default_rng(123)
        out = []
        for env in envs:
            out.append(env.reset(seed=seed)[0])
            for _ in range(30):
                out.append(env.step(rng.uniform(-1, 1, 2).astype(np.float32))[0])
        return np.stack(out)

    fam_a, fam_b = MazeLarge10Env(seed=5), MazeLarge10Env(seed=5)
    train_a, train_b = fam_a.get_train_envs()[:3], fam_b.get_train_envs()[:3]
    np.testing.assert_array_equal(rollout(train_a, 11), rollout(train_b, 11))
    assert not np.array_equal(rollout(train_a, 11), rollout(train_a, 12))
    # construction seeds alone also fix the first (unseeded) reset
    first_a = [e.reset()[0] for e in fam_a.get_train_envs()]
    first_b = [e.reset()[0] for e in fam_b.get_train_envs()]
    np.testing.assert_array_equal(np.stack(first_a), np.stack(first_b))
    # train and evaluation instances are distinct objects seeded apart
    test_a = fam_a.get_test_envs()
    assert all(t is not e for t, e in zip(test_a[:3], train_a, strict=True))
    eval_first = np.stack([e.reset()[0] for e in test_a])
    assert not np.array_equal(eval_first, np.stack(first_a))


# --------------------------------------------------------------------------- success and reward
@pytest.mark.parametrize("task", range(NUM_TASKS))
def test_success_on_goal_terminates(task: int, train_envs: list) -> None:
    env = train_envs[task]
    env.reset(seed=0)
    goal = np.array(TASKS[task][1], dtype=np.float64)
    # at the start: far from the goal, no success
    env.set_point(np.array(TASKS[task][0], dtype=np.float64))
    _, reward, terminated, _, info = env.step(ZERO)
    assert not info["success"] and not terminated and reward < -0.9
    # on the goal
    env.set_point(goal)
    obs, reward, terminated, truncated, info = env.step(ZERO)
    assert info["success"] is True and terminated is True and truncated is False
    assert info["task_id"] == task and family_task(obs) == task
    assert reward == pytest.approx(np.exp(-info["distance"]) - 1.0) and reward > -0.01
    # just inside / just outside the 0.5 radius (towards -x, which stays inside the goal cell)
    env.set_point(goal - np.array([0.45, 0.0]))
    _, _, terminated, _, info = env.step(ZERO)
    assert info["success"] and terminated
    env.set_point(goal - np.array([0.55, 0.0]))
    _, _, terminated, _, info = env.step(ZERO)
    assert not info["success"] and not terminated
    # the rule is d <= 0.5 (D4RL's): a point at exactly 0.5 succeeds (it does not move at rest)
    env.set_point(goal - np.array([0.5, 0.0]))
    _, reward, terminated, _, info = env.step(ZERO)
    assert info["distance"] == 0.5 and info["success"] and terminated


def family_task(obs: np.ndarray) -> int:
    return int(np.argmax(obs[4:]))


def test_dense_reward_formula(train_envs: list) -> None:
    env = train_envs[0]
    env.reset(seed=0)
    goal = np.array(TASKS[0][1], dtype=np.float64)
    for point in ([3.0, 2.0], [5.0, 6.5], [5.0, 7.9], [1.0, 1.0]):
        env.set_point(np.array(point), velocity=np.array([0.3, -0.2]))
        obs, reward, _, _, info = env.step(np.array([0.5, 0.5], dtype=np.float32))
        d = float(np.linalg.norm(env.data.qpos - goal))
        assert info["distance"] == pytest.approx(d)
        assert reward == pytest.approx(np.exp(-d) - 1.0, abs=1e-12)
        assert np.linalg.norm(obs[:2] - goal) == pytest.approx(d, abs=1e-5)


def test_sparse_tasks() -> None:
    family = MazeLarge10Env(seed=0, sparse_tasks=(2, 5))
    assert family.min_reward == -1.0
    envs = family.get_train_envs()
    for k, env in enumerate(envs):
        assert env.sparse == (k in (2, 5))
        env.reset(seed=0)
        goal = np.array(TASKS[k][1], dtype=np.float64)
        env.set_point(goal - np.array([0.6, 0.0]))
        _, far_reward, terminated, _, info = env.step(ZERO)
        assert not terminated
        env.set_point(goal - np.array([0.3, 0.0]))
        _, near_reward, terminated, _, info = env.step(ZERO)
        assert terminated and info["success"]
        if k in (2, 5):
            assert (far_reward, near_reward) == (0.0, 1.0)
        else:
            assert far_reward == pytest.approx(np.exp(-0.6) - 1.0, abs=1e-3)
            assert near_reward == pytest.approx(np.exp(-0.3) - 1.0, abs=1e-3)
        env.close()
    # CLI-style string and validation
    assert MazeLarge10Env(sparse_tasks="2,5").get_train_envs()[5].sparse
    assert MazeLarge10Env(sparse_tasks=range(10)).min_reward == 0.0
    with pytest.raises(ValueError):
        MazeLarge10Env(sparse_tasks=(10,))
    with pytest.raises(TypeError):
        MazeLarge10Env().make_task_env(0, seed=0, evaluation=False, bogus=1)


def test_play_mode_through_family() -> None:
    family = MazeLarge10Env(seed=0)
    obs, info = family.reset(seed=0, options={"task": 6})
    assert info["task_id"] == 6 and family_task(obs) == 6
    obs, *_ = family.step(ZERO)
    assert family_task(obs) == 6
    family.close()


def test_render_rgb_array_upright(monkeypatch) -> None:
    monkeypatch.setenv("MUJOCO_GL", "egl")
    env = MazeLargeTaskEnv(3, seed=0, render_mode="rgb_array")
    env.reset(seed=0)
    env.set_point(np.array([1.0, 1.0]))  # top-left free cell of the printed layout
    frame = env.render()
    env.close()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    rgb = frame.astype(int)
    green = (rgb[..., 1] > 120) & (rgb[..., 0] < 110) & (rgb[..., 2] < 110)
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    assert green.sum() > 20 and red.sum() > 20
    gy, gx = np.argwhere(green).mean(axis=0)
    ry, rx = np.argwhere(red).mean(axis=0)
    assert gy < 120 and gx < 160  # the point (row 1, col 1) is drawn top-left
    assert rx > 240 and 90 < ry < 170  # goal (row 4, col 10) is drawn right, mid-height
    # the image's top row of pixels shows the outer wall (tan), not the floor
    assert np.median(rgb[5, 20:300, 0]) > 150


def test_import_selects_headless_gl_before_mujoco_loads() -> None:
    """mujoco fixes its GL backend when first imported: maze.py must set MUJOCO_GL before that, or
    a process that imports it first gets glfw and cannot render any env without a display."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env.pop("DISPLAY", None)
    code = "import environments.maze, mujoco; print(mujoco.gl_context.GLContext.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "mujoco.egl"
