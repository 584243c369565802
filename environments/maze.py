"""MazeLarge-10-v0: ten start -> goal navigation tasks for a point mass in D4RL's large maze.

The physics is gymnasium-robotics' point mass (`PointEnv` and its `point.xml`: slide joints x/y,
damping 1, zero gravity, timestep 0.01, gear-100 motors, velocity clipped to [-5, 5] before every
step) inside the `LARGE_MAZE` layout of gymnasium-robotics, which is D4RL's large maze.

Coordinates follow D4RL (as the authors' code): the observation holds the joint positions qpos = (x,
y), where x grows with the layout's row index and y with its column index, and qpos (r, c) lies 0.2
past the centre of cell (r, c) on both axes (D4RL places walls at world (r + 1, c + 1) and the
particle body at world (1.2, 1.2)). The model built here reproduces exactly that geometry, so the
authors' qpos start and goal coordinates are used as given. For gymnasium-robotics' centred world
frame of the same layout, `d4rl_to_robotics_xy` gives the (rotation + shift) mapping.

Each task env is a `PointEnv` subclass; its MJCF is generated in memory from the installed
`point.xml` plus the wall blocks and compiled from the string, once per task and process (each env
gets a copy of the compiled model). No file is written: gymnasium-robotics' own `PointMazeEnv`
would leave one XML file per instance in the system temp dir.
"""

from __future__ import annotations

import os

# before mujoco is first imported: it picks its GL backend at import time
os.environ.setdefault("MUJOCO_GL", "egl")

import contextlib  # noqa: E402
import copy  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium.utils import seeding  # noqa: E402

from environments.multitask import MultiTaskEnv  # noqa: E402

# gymnasium_robotics prints a notice about its Adroit envs to stderr when first imported; it
# does not concern the maze, and would break the CLI's one-line errors
with contextlib.redirect_stderr(io.StringIO()):
    from gymnasium_robotics.envs.maze import maps
    from gymnasium_robotics.envs.maze import point as point_module
    from gymnasium_robotics.envs.maze.point import PointEnv

#: the large maze layout (1 wall, 0 free), row 0 at the top; identical to D4RL's LARGE_MAZE
MAZE_MAP: tuple[tuple[int, ...], ...] = tuple(tuple(int(v) for v in row) for row in maps.LARGE_MAZE)

#: (start, goal) of each task in D4RL qpos coordinates (row, col), from the authors' task file
#: large_10t_train_goals.csv
TASKS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
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
)
NUM_TASKS = len(TASKS)
HORIZON = 600
GOAL_RADIUS = 0.5
START_NOISE = 0.1  # reset position: start + U(-0.1, 0.1) per axis
VELOCITY_NOISE = 0.1  # reset velocity: N(0, 0.1^2) per axis
MAX_VELOCITY = 5.0

#: D4RL's offset between the particle's joint origin and the wall grid: walls sit at world
#: (r + 1, c + 1), the particle body at world (1.2, 1.2), so cell (r, c) is centred at qpos
#: (r - 0.2, c - 0.2)
QPOS_OFFSET = 0.2
_PARTICLE_BODY_POS = 1.0 + QPOS_OFFSET
_WALL_HALF_SIZE = 0.5
_WALL_HALF_HEIGHT = 0.2

FRAME_WIDTH, FRAME_HEIGHT = 320, 240


def qpos_to_cell(xy: np.ndarray) -> tuple[int, int]:
    """The layout cell (row, col) containing the D4RL qpos point `xy` (cells are unit squares)."""
    return int(np.floor(xy[0] + QPOS_OFFSET + 0.5)), int(np.floor(xy[1] + QPOS_OFFSET + 0.5))


def d4rl_to_robotics_xy(xy: np.ndarray) -> np.ndarray:
    """Map D4RL qpos (x, y) to gymnasium-robotics' PointMaze world frame of the same layout.

    gymnasium-robotics centres the maze at the origin with x along columns and y up the rows:
    cell (r, c) has centre (c + 0.5 - W/2, H/2 - r - 0.5). With qpos = cell centre - 0.2 this gives
    x_robotics = y + 0.2 + 0.5 - W/2 and y_robotics = H/2 - 0.5 - x - 0.2 (a proper rotation, so
    the dynamics are the same in both frames).
    """
    xy = np.asarray(xy, dtype=np.float64)
    height, width = len(MAZE_MAP), len(MAZE_MAP[0])
    col = xy[..., 1] + QPOS_OFFSET
    row = xy[..., 0] + QPOS_OFFSET
    return np.stack([col + 0.5 - width / 2, height / 2 - row - 0.5], axis=-1)


def _point_xml_path() -> Path:
    """gymnasium-robotics' point-mass model (the agent part of every PointMaze)."""
    return Path(point_module.__file__).resolve().parent.parent / "assets" / "point" / "point.xml"


@functools.cache
def _compiled_model() -> mujoco.MjModel:
    """Compiled maze model, cached: compiling takes ~60 ms, copying it ~7 ms."""
    return mujoco.MjModel.from_xml_string(maze_xml())


@functools.cache
def maze_xml() -> str:
    """MJCF of the large maze: gymnasium-robotics' point.xml plus D4RL-placed wall blocks.

    The red goal marker is a site on a mocap body `target` (set per task through its `body_pos`):
    MuJoCo never recomputes sites of the world body, and a massless mocap body leaves the dynamics
    untouched. It only matters for rendering.
    """
    tree = ET.parse(_point_xml_path())
    worldbody = tree.find("worldbody")
    assert worldbody is not None
    particle = worldbody.find("body[@name='particle']")
    assert particle is not None
    particle.set("pos", f"{_PARTICLE_BODY_POS} {_PARTICLE_BODY_POS} 0")
    for r, row in enumerate(MAZE_MAP):
        for c, cell in enumerate(row):
            if cell == 1:
                ET.SubElement(
                    worldbody,
                    "geom",
                    name=f"wall_{r}_{c}",
                    type="box",
                    pos=f"{r + 1.0} {c + 1.0} 0",
                    size=f"{_WALL_HALF_SIZE} {_WALL_HALF_SIZE} {_WALL_HALF_HEIGHT}",
                    contype="1",
                    conaffinity="1",
                    rgba="0.7 0.5 0.3 1",
                )
    target = ET.SubElement(worldbody, "body", name="target", mocap="true", pos="0 0 0")
    ET.SubElement(target, "site", name="target", size="0.2", rgba="1 0 0 0.7", type="sphere")
    return ET.tostring(tree.getroot(), encoding="unicode")


def _camera_config() -> dict[str, Any]:
    """Top-down view of the whole maze, rows running down and columns to the right."""
    height, width = len(MAZE_MAP), len(MAZE_MAP[0])
    return {
        "type": mujoco.mjtCamera.mjCAMERA_FREE,
        "lookat": np.array([(height + 1) / 2, (width + 1) / 2, 0.0]),
        "distance": 11.5,
        "elevation": -90.0,
        "azimuth": 180.0,
    }


class MazeLargeTaskEnv(PointEnv):
    """One task of MazeLarge-10: drive the point from `TASKS[task][0]` to `TASKS[task][1]`.

    Observation [x, y, vx, vy, one-hot(10)] (float32); action: force in [-1, 1]^2. Reaching the
    goal (distance <= 0.5) sets `info["success"]` and terminates. Dense reward exp(-d) - 1; a
    sparse task pays 1[d <= 0.5].
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": 100,
    }

    def __init__(
        self,
        task: int,
        *,
        sparse: bool = False,
        seed: int | None = None,
        render_mode: str | None = None,
        width: int = FRAME_WIDTH,
        height: int = FRAME_HEIGHT,
    ) -> None:
        if not 0 <= task < NUM_TASKS:
            raise ValueError(f"task must be in [0, {NUM_TASKS}), got {task}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.task = task
        # MujocoEnv insists on an existing model file: it gets the stock point.xml, but
        # `_initialize_simulation` below builds the maze model instead.
        super().__init__(
            xml_file=str(_point_xml_path()),
            render_mode=render_mode,
            width=width,
            height=height,
            default_camera_config=_camera_config(),
        )
        self.sparse = sparse
        self.start = np.array(TASKS[task][0], dtype=np.float64)
        self.goal = np.array(TASKS[task][1], dtype=np.float64)
        self._onehot = np.zeros(NUM_TASKS, dtype=np.float32)
        self._onehot[task] = 1.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4 + NUM_TASKS,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)

    # ------------------------------------------------------------------ helpers
    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """A copy of the compiled maze model (MujocoEnv would load `self.fullpath`)."""
        model = copy.copy(_compiled_model())
        # mj_resetData starts the mocap marker at its body_pos: the task's goal in world coordinates
        model.body_pos[model.body("target").id, :2] = np.asarray(TASKS[self.task][1]) + (
            _PARTICLE_BODY_POS
        )
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _get_obs(self) -> np.ndarray:  # type: ignore[override]
        obs = np.empty(4 + NUM_TASKS, dtype=np.float32)
        obs[:2] = self.data.qpos
        obs[2:4] = self.data.qvel
        obs[4:] = self._onehot
        return obs

    def goal_distance(self) -> float:
        """Euclidean distance of the point to the task's goal (qpos frame)."""
        qpos = self.data.qpos
        return float(np.hypot(qpos[0] - self.goal[0], qpos[1] - self.goal[1]))

    def set_point(self, xy: np.ndarray, velocity: np.ndarray | None = None) -> np.ndarray:
        """Place the point at qpos `xy` (for tests and demos); returns the new observation."""
        qvel = np.zeros(2) if velocity is None else np.asarray(velocity, dtype=np.float64)
        self.set_state(np.asarray(xy, dtype=np.float64), qvel)
        return self._get_obs()

    # ------------------------------------------------------------------ gymnasium API
    def reset_model(self) -> np.ndarray:
        qpos = self.start + self.np_random.uniform(-START_NOISE, START_NOISE, size=2)
        qvel = self.np_random.normal(0.0, VELOCITY_NOISE, size=2)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_reset_info(self) -> dict[str, Any]:
        return {"task_id": self.task, "success": self.goal_distance() <= GOAL_RADIUS}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        # Same dynamics as PointEnv.step (clip action, clip velocity, one mj_step) without its
        # redundant mj_forward/mj_rnePostConstraint calls and per-step array copies.
        data = self.data
        data.ctrl[:] = np.clip(action, -1.0, 1.0)
        np.clip(data.qvel, -MAX_VELOCITY, MAX_VELOCITY, out=data.qvel)
        mujoco.mj_step(self.model, data)
        dist = self.goal_distance()
        success = dist <= GOAL_RADIUS
        if self.sparse:
            reward = 1.0 if success else 0.0
        else:
            reward = float(np.exp(-dist)) - 1.0
        info = {"success": success, "task_id": self.task, "distance": dist}
        return self._get_obs(), reward, success, False, info


class MazeLarge10Env(MultiTaskEnv):
    """MazeLarge-10-v0: the ten large-maze navigation tasks as one multi-task family.

    `sparse_tasks` lists task indices whose reward is the sparse 1[d <= 0.5] instead of the dense
    exp(-d) - 1.
    """

    task_names = tuple(f"maze-{s[0]}-{s[1]}-to-{g[0]}-{g[1]}" for s, g in TASKS)
    horizon = HORIZON
    min_reward = -1.0
    onehot_mode = "slice"
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {}
    task_options: ClassVar[tuple[str, ...]] = ("sparse_tasks",)
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}
    reward_fn_problem = None

    def __init__(
        self, seed: int | None = None, render_mode: str | None = None, sparse_tasks: Any = ()
    ) -> None:
        sparse = _parse_sparse_tasks(sparse_tasks)
        super().__init__(seed=seed, render_mode=render_mode, sparse_tasks=sparse)
        self._sparse = frozenset(sparse)
        # UDS relabels other tasks' data with min_reward; with every task sparse that is 0.
        if len(sparse) == NUM_TASKS:
            self.min_reward = 0.0  # type: ignore[misc]

    def reward_fn(
        self, task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
        reward_info: np.ndarray | None = None,
    ) -> np.ndarray:
        """Task `task`'s reward at the qpos each transition reached (next_obs[..., :2], in both
        stored layouts). Every task runs the same maze physics (the goal marker is a massless
        mocap body) and only the goal differs, so this is the step reward `task` pays for that
        (obs, action), up to the float32 storage."""
        pos = np.asarray(next_obs, dtype=np.float64)[..., :2]
        goal = TASKS[task][1]
        dist = np.hypot(pos[..., 0] - goal[0], pos[..., 1] - goal[1])
        if task in self._sparse:
            return (dist <= GOAL_RADIUS).astype(np.float64)
        return np.exp(-dist) - 1.0

    def make_task_env(
        self,
        task: int,
        *,
        seed: int | None,
        evaluation: bool,
        render_mode: str | None = None,
        sparse_tasks: Any = (),
        **task_kwargs: Any,
    ) -> gym.Env:
        if task_kwargs:
            raise TypeError(f"MazeLarge10 takes only sparse_tasks, got {sorted(task_kwargs)}")
        sparse = task in _parse_sparse_tasks(sparse_tasks)
        return MazeLargeTaskEnv(task, sparse=sparse, seed=seed, render_mode=render_mode)


def _parse_sparse_tasks(sparse_tasks: Any) -> tuple[int, ...]:
    """Normalise `sparse_tasks` (ints, or a comma-separated string as on a CLI) to sorted ints."""
    if sparse_tasks is None:
        return ()
    if isinstance(sparse_tasks, str):
        sparse_tasks = [s for s in sparse_tasks.replace(" ", "").split(",") if s]
    if isinstance(sparse_tasks, (int, np.integer)):
        sparse_tasks = [sparse_tasks]
    tasks = tuple(sorted({int(t) for t in sparse_tasks}))
    for t in tasks:
        if not 0 <= t < NUM_TASKS:
            raise ValueError(f"sparse task index {t} not in [0, {NUM_TASKS})")
    return tasks
