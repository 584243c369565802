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


class PointReachTaskEnv(gym.Env):
    """One task of PointReachMT4: reach `GOALS[task]` from near the origin."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, task: int, num_tasks: int = len(GOALS), seed: int | None = None) -> None:
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

    default_hyperparameters: ClassVar[dict[str, Any]] = {
        "n_epochs": 30,
        "batch_size": 400,
        "steps_per_epoch": 2,
        "gradient_steps_per_itr": 200,
        "buffer_batch_size": 64,
        "min_buffer_size": 500,
        "lr": 1e-3,
        "hidden_sizes": [64, 64],
        "num_evaluation_episodes": 20,
    }

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
        return PointReachTaskEnv(task, num_tasks=len(GOALS), seed=seed)
