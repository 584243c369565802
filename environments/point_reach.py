"""PointReachMT4-v0: a pure-numpy 2-D point with four goals, the project's laboratory for QMP.

The point starts near the origin and moves by 0.1 x action per step inside [-2, 2]^2. The four
tasks are laid out so that behaviour sharing matters:

* tasks 0 and 1 (dense): goals close together to the right -> shared behaviour;
* task 2 (dense): goal to the left -> conflicting behaviour, never worth borrowing for 0, 1, 3;
* task 3 (sparse): goal beyond the shared pair; a random walk rarely reaches it, but borrowing the
  neighbours' "go right" behaviour brings the point most of the way.

Dense reward is exp(-d) - 1 (in (-1, 0], highest at the goal's centre); the sparse task pays -1 a
step outside the goal and 0 inside. `info["success"]` is set on every step spent within
`GOAL_RADIUS` of the goal. Episodes do not terminate on success: the best policy goes to the goal
and stays there, so the deterministic (mean) policy has a clear optimum, and an episode counts as a
success when any of its steps was.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from environments.multitask import MultiTaskEnv

GOALS = np.array([[1.0, 0.25], [1.0, -0.25], [-1.0, 0.0], [1.4, 0.0]], dtype=np.float64)
SPARSE = (False, False, False, True)
GOAL_RADIUS = 0.15
STEP_SIZE = 0.1
ARENA = 2.0
HORIZON = 50
RENDER_SIZE = 200


class PointReachTaskEnv(gym.Env):
    """One task of PointReachMT4: reach `GOALS[task]` from near the origin."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: int,
        num_tasks: int = len(GOALS),
        seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.task = task
        self.goal = GOALS[task]
        self.sparse = SPARSE[task]
        self._onehot = np.zeros(num_tasks, dtype=np.float32)
        self._onehot[task] = 1.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2 + num_tasks,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = np.zeros(2)
        if seed is not None:
            self.reset(seed=seed)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos.astype(np.float32), self._onehot])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-0.05, 0.05, size=2)
        return self._obs(), {"task_id": self.task}

    def set_position(self, pos: np.ndarray) -> np.ndarray:
        """Place the point (for tests and demos); returns the new observation."""
        self._pos = np.clip(np.asarray(pos, dtype=np.float64), -ARENA, ARENA)
        return self._obs()

    def render(self) -> np.ndarray | None:
        """Top-down RENDER_SIZE^2 frame: goals as disks (this task's green, others grey), the
        point black. Pure numpy, no display needed."""
        if self.render_mode != "rgb_array":
            return None
        size = RENDER_SIZE
        coords = (np.arange(size) + 0.5) / size * 2 * ARENA - ARENA
        x, y = np.meshgrid(coords, coords[::-1])  # row 0 is the top (largest y): upright
        frame = np.full((size, size, 3), 255, dtype=np.uint8)
        for k, goal in enumerate(GOALS):
            disk = np.hypot(x - goal[0], y - goal[1]) < GOAL_RADIUS
            frame[disk] = (60, 170, 60) if k == self.task else (200, 200, 200)
        frame[np.hypot(x - self._pos[0], y - self._pos[1]) < 0.06] = (0, 0, 0)
        return frame

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        step = STEP_SIZE * np.clip(action, -1.0, 1.0)
        self._pos = np.clip(self._pos + step, -ARENA, ARENA)
        dist = float(np.hypot(*(self._pos - self.goal)))
        success = dist < GOAL_RADIUS
        if self.sparse:
            reward = 0.0 if success else -1.0
        else:
            reward = float(np.exp(-dist) - 1.0)
        info = {"success": success, "task_id": self.task, "distance": dist}
        return self._obs(), reward, False, False, info


class PointReachMT4Env(MultiTaskEnv):
    """The four PointReach tasks as one multi-task family."""

    task_names = ("reach-right-up", "reach-right-down", "reach-left", "reach-far-right-sparse")
    horizon = HORIZON
    min_reward = -1.0
    onehot_mode = "slice"
    reward_fn_problem = None

    def reward_fn(
        self, task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
        reward_info: np.ndarray | None = None,
    ) -> np.ndarray:
        """Task `task`'s reward at the point each transition reached (next_obs[..., :2], in
        both stored layouts). All tasks move the point alike and differ only in the goal, so
        this is the step reward `task` pays for that (obs, action), up to the float32 storage."""
        pos = np.asarray(next_obs, dtype=np.float64)[..., :2]
        goal = GOALS[task]
        dist = np.hypot(pos[..., 0] - goal[0], pos[..., 1] - goal[1])
        if SPARSE[task]:
            return np.where(dist < GOAL_RADIUS, 0.0, -1.0)
        return np.exp(-dist) - 1.0

    def make_task_env(
        self,
        task: int,
        *,
        seed: int | None,
        evaluation: bool,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> gym.Env:
        if task_kwargs:
            raise TypeError(f"PointReachMT4 takes no task options, got {sorted(task_kwargs)}")
        return PointReachTaskEnv(task, num_tasks=len(GOALS), seed=seed, render_mode=render_mode)
