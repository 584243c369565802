"""KitchenMTEasy-v0: ten single-element tasks in the Franka (adept) kitchen.

Each task puts the 9-DoF Franka of gymnasium-robotics' FrankaKitchen (MuJoCo 3 port of D4RL's
adept kitchen: joint-velocity control, 40 physics steps of 2 ms per env step) in front of one
kitchen element it has to open/close or switch on/off. The close/off tasks start from the
open/on state of their element (written into the robot env's `init_qpos` before each reset).

Observation (70, float32): 9 robot joint positions + 21 object joint positions (both with uniform
noise, 10 % of the configured amplitudes as in D4RL) + a 30-D goal vector laid out like the 30-D
joint vector + the task one-hot (10). The network input is the first 60 entries ("slice").

The goal vector holds D4RL's fixed default goals (microwave, kettle, bottom burner on, light on)
with THIS task's true goal for its element written last, so burner-off and light-off tasks show
their "off" goal (the original wrote the fixed goals last, so those tasks showed the "on" goal
while their reward used the "off" one).

Dense reward per step: 20 * (0.4 * in_place + 0.6 * reach - 1) in [-20, 0], where in_place
scores the element's joint distance to its goal and reach the gripper's distance to the element's
handle site (Gaussian tolerance, 1 inside bounds, 0.1 at the margin). Success (goal distance below
the task's threshold) terminates the episode with reward 2800 (horizon 140 x 20). Sparse tasks
pay 1[success] instead. Reward and success use the true simulator state, never the noisy
observation. Nothing is rendered while stepping.
"""

from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from environments.multitask import MultiTaskEnv

# gymnasium_robotics prints a notice about its Adroit envs to stderr when first imported; it
# does not concern the kitchen, and would break the CLI's one-line errors
with contextlib.redirect_stderr(io.StringIO()):
    from gymnasium_robotics.envs.franka_kitchen import kitchen_env as _gr_kitchen
    from gymnasium_robotics.envs.franka_kitchen.utils import read_config_from_xml

HORIZON = 140
DENSE_SCALE = 20.0
#: reward of the step that succeeds (and terminates): horizon x the dense reward scale
SUCCESS_REWARD = HORIZON * DENSE_SCALE
#: the reach term is fully satisfied once the gripper is this close to the element's site
REACH_RADIUS = 0.08
#: uniform observation noise as a fraction of franka_config.xml's amplitudes (D4RL used 10 %)
DEFAULT_NOISE_RATIO = 0.1

NUM_ROBOT_JOINTS = 9
NUM_OBJECT_JOINTS = 21
GOAL_DIM = NUM_ROBOT_JOINTS + NUM_OBJECT_JOINTS  # the goal vector mirrors the 30-D joint vector

#: element -> indices into the 30-D joint vector (= MuJoCo qpos of the kitchen model, checked in
#: the tests): bottom burner = knob_Joint_2 + bottom_left_burner, top burner = knob_Joint_4 +
#: top_left_burner, light = light_switch + light_joint, hinge = left + right hinge door
ELEMENT_INDICES: dict[str, np.ndarray] = {
    name: np.asarray(_gr_kitchen.OBS_ELEMENT_INDICES[name])
    for name in ("bottom burner", "top burner", "light switch", "slide cabinet", "hinge cabinet")
}
#: element -> the model site the gripper should reach (on the body the element's joint moves)
ELEMENT_SITES: dict[str, str] = {
    "bottom burner": "knob2_site",
    "top burner": "knob4_site",
    "light switch": "light_site",
    "slide cabinet": "slide_site",
    "hinge cabinet": "hinge_site2",
}
#: open/on joint values (D4RL's goals)
ELEMENT_ON: dict[str, np.ndarray] = {
    name: np.asarray(_gr_kitchen.OBS_ELEMENT_GOALS[name], dtype=np.float64)
    for name in ELEMENT_INDICES
}
#: D4RL's default goals, always present in the goal vector (constant across tasks)
FIXED_GOAL_ELEMENTS = ("microwave", "kettle", "bottom burner", "light switch")
#: the model's tool point, between the fingertips (the "gripper centre")
GRIPPER_SITE = "end_effector"


class TaskSpec:
    """One task: which element, where it starts, where it must go and how close is success."""

    __slots__ = ("element", "name", "threshold", "turn_on")

    def __init__(self, name: str, element: str, turn_on: bool, threshold: float) -> None:
        self.name = name
        self.element = element
        self.turn_on = turn_on
        self.threshold = threshold


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("slide-cabinet-open", "slide cabinet", True, 0.1),
    TaskSpec("slide-cabinet-close", "slide cabinet", False, 0.1),
    TaskSpec("hinge-cabinet-open", "hinge cabinet", True, 0.1),
    TaskSpec("hinge-cabinet-close", "hinge cabinet", False, 0.3),
    TaskSpec("bottom-burner-on", "bottom burner", True, 0.3),
    TaskSpec("bottom-burner-off", "bottom burner", False, 0.3),
    TaskSpec("top-burner-on", "top burner", True, 0.3),
    TaskSpec("top-burner-off", "top burner", False, 0.3),
    TaskSpec("light-switch-on", "light switch", True, 0.3),
    TaskSpec("light-switch-off", "light switch", False, 0.3),
)


def tolerance(
    x: float, lower: float, upper: float, margin: float, value_at_margin: float = 0.1
) -> float:
    """Gaussian-shaped tolerance: 1 inside [lower, upper], decaying to `value_at_margin` at
    `margin` outside the bounds (0 outside the bounds when margin is 0).

    Same shape as dm_control's `rewards.tolerance(..., sigmoid="gaussian")`, written here.
    """
    if lower <= x <= upper:
        return 1.0
    if margin <= 0.0:
        return 0.0
    dist = (lower - x if x < lower else x - upper) / margin
    scale_sq = -2.0 * np.log(value_at_margin)
    return float(np.exp(-0.5 * dist * dist * scale_sq))


def _object_noise_amplitudes(config_path: str) -> np.ndarray:
    """franka_config.xml's position-noise amplitudes of joint-vector entries 9..29 (objects).

    gymnasium-robotics keeps only the first nv (29) entries and offsets the object slice by one;
    D4RL scaled qpos entry i by amplitude i, which this reproduces.
    """
    return np.array(
        [
            read_config_from_xml(config_path, f"qpos{i}", "pos_noise_amp", float)[0]
            for i in range(NUM_ROBOT_JOINTS, GOAL_DIM)
        ],
        dtype=np.float64,
    )


class KitchenTaskEnv(gym.Env):
    """One KitchenMTEasy task on top of gymnasium-robotics' FrankaKitchen robot env."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 12}

    def __init__(
        self,
        task: int,
        *,
        sparse: bool = False,
        noise_ratio: float = DEFAULT_NOISE_RATIO,
        seed: int | None = None,
        render_mode: str | None = None,
        width: int = 240,
        height: int = 240,
    ) -> None:
        if not 0 <= task < len(TASKS):
            raise ValueError(f"task must be in [0, {len(TASKS)}), got {task}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.task_spec = TASKS[task]
        self.sparse = bool(sparse)
        self.noise_ratio = float(noise_ratio)
        self.render_mode = render_mode
        element = self.task_spec.element

        # The kitchen env only serves to build the robot env (model, init_qpos, camera); its own
        # dict observations and sparse rewards are bypassed.
        kitchen = _gr_kitchen.KitchenEnv(
            tasks_to_complete=[element],
            robot_noise_ratio=self.noise_ratio,
            object_noise_ratio=0.0,
            render_mode=render_mode,
            width=width,
            height=height,
        )
        self._robot = kitchen.robot_env
        self.model: mujoco.MjModel = self._robot.model
        self.data: mujoco.MjData = self._robot.data

        self.element_indices = ELEMENT_INDICES[element]
        closed = np.array(self._robot.init_qpos[self.element_indices], dtype=np.float64)
        opened = ELEMENT_ON[element]
        self.initial_value = opened.copy() if not self.task_spec.turn_on else closed
        self.goal_value = opened.copy() if self.task_spec.turn_on else closed
        init_qpos = np.array(self._robot.init_qpos, dtype=np.float64)
        init_qpos[self.element_indices] = self.initial_value
        self._robot.init_qpos = init_qpos

        goal = np.zeros(GOAL_DIM, dtype=np.float64)
        for name in FIXED_GOAL_ELEMENTS:
            goal[_gr_kitchen.OBS_ELEMENT_INDICES[name]] = _gr_kitchen.OBS_ELEMENT_GOALS[name]
        goal[self.element_indices] = self.goal_value  # this task's true goal wins (bug 16)
        self.goal_vector = goal

        config = Path(_gr_kitchen.__file__).parent.parent / "assets/kitchen_franka/franka_assets"
        self._obj_noise = self.noise_ratio * _object_noise_amplitudes(
            str(config / "franka_config.xml")
        )
        self._site_id = mujoco.mj_name2id(
            self.model, mujoco.mjtObj.mjOBJ_SITE, ELEMENT_SITES[element]
        )
        self._gripper_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, GRIPPER_SITE)
        self._element_dofs = np.array(
            [self.model.jnt_dofadr[self._joint_of_qpos(i)] for i in self.element_indices]
        )

        n = len(TASKS)
        self._obs = np.zeros(GOAL_DIM * 2 + n, dtype=np.float32)
        self._obs[GOAL_DIM : 2 * GOAL_DIM] = goal
        self._obs[2 * GOAL_DIM + task] = 1.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, self._obs.shape, np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (NUM_ROBOT_JOINTS,), np.float32)

        self._d_goal_init = 1.0
        self._goal_margin = 1.0
        self._reach_margin = 1.0
        if seed is not None:
            self.reset(seed=seed)

    # ----------------------------------------------------------------------------- helpers
    def _joint_of_qpos(self, qpos_index: int) -> int:
        for j in range(self.model.njnt):
            if self.model.jnt_qposadr[j] == qpos_index:
                return j
        raise ValueError(f"no joint at qpos {qpos_index}")

    def goal_distance(self) -> float:
        """Distance of the element's joints to the goal (true state): success is below threshold."""
        return float(np.linalg.norm(self.data.qpos[self.element_indices] - self.goal_value))

    def hand_distance(self) -> float:
        """Distance from the gripper centre (end_effector site) to the element's site."""
        diff = self.data.site_xpos[self._gripper_id] - self.data.site_xpos[self._site_id]
        return float(np.sqrt(diff @ diff))

    def set_element_qpos(self, values: np.ndarray) -> None:
        """Place the element's joints (for tests and demos); velocities of those joints zeroed."""
        self.data.qpos[self.element_indices] = values
        self.data.qvel[self._element_dofs] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def _observation(self, robot_qpos: np.ndarray) -> np.ndarray:
        obs = self._obs
        obs[:NUM_ROBOT_JOINTS] = robot_qpos[:NUM_ROBOT_JOINTS]
        obj = self.data.qpos[NUM_ROBOT_JOINTS:GOAL_DIM]
        if self.noise_ratio:
            noise = self._robot.np_random.uniform(-1.0, 1.0, NUM_OBJECT_JOINTS)
            obs[NUM_ROBOT_JOINTS:GOAL_DIM] = obj + self._obj_noise * noise
        else:
            obs[NUM_ROBOT_JOINTS:GOAL_DIM] = obj
        return obs.copy()

    def dense_reward(self, d_goal: float, d_hand: float) -> tuple[float, float, float]:
        """(reward, in_place, reach) of the dense shaping at the given distances."""
        in_place = tolerance(d_goal, 0.0, self.task_spec.threshold, self._goal_margin)
        reach = tolerance(d_hand, 0.0, REACH_RADIUS, self._reach_margin)
        return DENSE_SCALE * (0.4 * in_place + 0.6 * reach - 1.0), in_place, reach

    # ----------------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        robot_obs, _ = self._robot.reset(seed=seed)
        self._d_goal_init = self.goal_distance()
        self._goal_margin = abs(self._d_goal_init - self.task_spec.threshold)
        self._reach_margin = abs(self.hand_distance() - REACH_RADIUS)
        return self._observation(robot_obs), {"task_id": self.task}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        robot_obs, _, _, _, _ = self._robot.step(action)  # never renders (render_mode != human)
        mujoco.mj_kinematics(self.model, self.data)  # site positions of the final state
        d_goal = self.goal_distance()
        d_hand = self.hand_distance()
        success = d_goal < self.task_spec.threshold
        dense, in_place, reach = self.dense_reward(d_goal, d_hand)
        if self.sparse:
            reward = float(success)
        else:
            reward = SUCCESS_REWARD if success else dense
        info = {
            "success": success,
            "task_id": self.task,
            "goal_distance": d_goal,
            "hand_distance": d_hand,
            "in_place": in_place,
            "reach": reach,
        }
        return self._observation(robot_obs), reward, success, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._robot.render()

    def close(self) -> None:
        self._robot.close()


class KitchenMTEasyEnv(MultiTaskEnv):
    """The ten KitchenMTEasy tasks as one multi-task family.

    Options: `sparse_tasks` (task ids paying 1[success] instead of the dense reward) and
    `noise_ratio` (observation noise as a fraction of the configured amplitudes, default 0.1).
    """

    eval_copies_limit: ClassVar[int] = 1  # slow to build; the policy call is not the cost

    task_names = tuple(t.name for t in TASKS)
    horizon = HORIZON
    min_reward = -DENSE_SCALE
    onehot_mode = "slice"
    reward_fn_problem = (
        "its reward reads the true simulator state (the stored observation carries noise) with "
        "margins set from each episode's start")
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {}
    task_options: ClassVar[tuple[str, ...]] = ("sparse_tasks",)
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}


    def make_task_env(
        self,
        task: int,
        *,
        seed: int | None,
        evaluation: bool,
        render_mode: str | None = None,
        sparse_tasks: tuple[int, ...] | list[int] = (),
        noise_ratio: float = DEFAULT_NOISE_RATIO,
        **task_kwargs: Any,
    ) -> gym.Env:
        if task_kwargs:
            raise TypeError(f"KitchenMTEasy got unknown task options {sorted(task_kwargs)}")
        sparse = {int(k) for k in sparse_tasks}
        if not sparse <= set(range(len(TASKS))):
            raise ValueError(f"sparse_tasks must be task ids in [0, {len(TASKS)}), got {sparse}")
        return KitchenTaskEnv(
            task,
            sparse=task in sparse,
            noise_ratio=noise_ratio,
            seed=seed,
            render_mode=render_mode,
        )


__all__ = ["TASKS", "KitchenMTEasyEnv", "KitchenTaskEnv", "tolerance"]
