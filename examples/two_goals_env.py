"""A user's own multi-task family, registered with gymnasium: two tasks on a line.

    python run.py qmp_dnc --env=two_goals_env:TwoGoalsMT2-v0 --n_epochs 5   # with examples/ on
                                                                             # PYTHONPATH

A family subclasses `environments.MultiTaskEnv`, sets its class attributes (task names, horizon,
the reward UDS gives shared data) and builds one plain gymnasium env per task. Each task env's
observation ends with the task one-hot (`onehot_mode` says whether networks see it) and its step
info carries `success`. Registering the family under an id is all `run.py` needs; `MODULE:ID`
makes `run.py` import the module, which runs the registration below.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from environments import MultiTaskEnv

GOALS = (-0.5, 0.5)
HORIZON = 20


class GoalOnALine(gym.Env):
    """Move a point on [-1, 1] to its goal; reward -|x - goal|, success within 0.1."""

    def __init__(self, task: int, num_tasks: int, seed: int | None = None) -> None:
        self.task, self.goal = task, GOALS[task]
        self.onehot = np.eye(num_tasks, dtype=np.float32)[task]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1 + num_tasks,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x = 0.0
        if seed is not None:
            self.reset(seed=seed)

    def _obs(self) -> np.ndarray:
        return np.concatenate([[np.float32(self.x)], self.onehot]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-0.1, 0.1))
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.x = float(np.clip(self.x + 0.1 * np.clip(action[0], -1.0, 1.0), -1.0, 1.0))
        distance = abs(self.x - self.goal)
        return self._obs(), -distance, False, False, {"success": distance < 0.1}


class TwoGoalsMT2Env(MultiTaskEnv):
    task_names = ("left", "right")
    horizon = HORIZON
    min_reward = -2.0
    onehot_mode = "slice"

    def make_task_env(self, task: int, *, seed: int | None, evaluation: bool,
                      render_mode: str | None = None, **task_kwargs: Any) -> gym.Env:
        return GoalOnALine(task, len(GOALS), seed=seed)


if "TwoGoalsMT2-v0" not in gym.registry:
    gym.register("TwoGoalsMT2-v0", entry_point=TwoGoalsMT2Env, max_episode_steps=HORIZON)
