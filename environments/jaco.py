"""JacoReachMT5-v1, the "Multistage Reacher": a 6-joint Kinova Jaco arm visits three sub-goals.

The arm is the Kinova Jaco shipped with dm-control (its MJCF and decimated meshes are read from the
installed package; dm_control itself is never imported). The model is assembled with
`mujoco.MjSpec`:

* arm `jaco_arm.xml` with its joint dynamics as shipped (armature 4 / 2, frictionloss 2 / 1, damping
  0.01); joints 1, 4, 5, 6 are continuous on the real robot and get limits of +-pi here so the
  joint-position observation stays bounded (joints 2 and 3 keep their own limits);
* hand `jaco_hand.xml` attached at `wristsite`, its three finger joints removed (the fingers are
  rigid; the original model had no fingers at all);
* six torque motors, ctrlrange +-1, gear = the Kinova datasheet peak torques also used by
  dm-control (30.5 N m for joints 1-3, 6.8 N m for joints 4-6). The largest gravity load on joint 2
  (arm stretched horizontally) is ~14 N m (+2 N m friction), i.e. about half the available torque,
  so the arm can both move and hold itself against gravity (with zero action it sags);
* base at the world origin standing on a floor plane at z = 0, joint 1 vertical. The sub-goals are
  then 0.30-0.52 m from the shoulder (reach of the hand body ~0.75 m), all reachable with the hand
  in several orientations (tests drive the hand to every sub-goal with a torque-limited
  controller);
* a mocap sphere `target` (radius 0.049, no collision) marking the current goal;
* Euler integrator, timestep 0.01, 4 physics steps per env step (control period 0.04 s).

The "hand" is the origin of the hand body (the wrist flange), like the original's `jaco_link_hand`.
The reset pose `HOME_QPOS` (upper arm near vertical, forearm horizontal) puts the hand at about
(0.44, 0.06, 0.57), 0.31-0.44 m from every sub-goal.

Tasks (sub-goals `SUBGOALS`, success = hand within 0.05 of the current target):
0: S0 -> S1 -> S2 dense + time penalty; 1: S0 -> S1 -> S3 dense, no time penalty, shift -2, +200
per sub-goal; 2: S1 -> S3 -> S2 dense + time penalty; 3: S1 -> S2 -> S0 sparse (no distance term)
+ time penalty; 4: stay within 0.05 of the hand's reset position for 90 (cumulative) steps.

Observation (23, float32): joint positions (6), joint velocities (6), stage one-hot (3), task
one-hot (5), hand position (3). The network input zeroes the task one-hot and the hand position
(as the original did); with `include_task_id` only the hand position is zeroed.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import mujoco
import numpy as np

from environments.multitask import MultiTaskEnv
from environments.rendering import OffscreenCamera

#: sub-goals S0..S3 (world xyz, metres)
SUBGOALS = np.array(
    [[0.2, 0.3, 0.5], [0.3, 0.0, 0.3], [0.4, -0.3, 0.4], [0.4, 0.3, 0.2]], dtype=np.float64
)
#: sub-goal sequence of each task; None = the stay task
TASK_SEQUENCES: tuple[tuple[int, int, int] | None, ...] = (
    (0, 1, 2),
    (0, 1, 3),
    (1, 3, 2),
    (1, 2, 0),
    None,
)
STAY_TASK = 4
SPARSE_TASK = 3
BONUS_TASK = 1
NUM_TASKS = len(TASK_SEQUENCES)
NUM_STAGES = 3
SUCCESS_RADIUS = 0.05
STAY_STEPS_PER_STAGE = 30
TIME_PENALTY = 0.4
BONUS_SHIFT = -2.0
#: per sub-goal bonus of task 1: (|shift| + 1) * 200 / 3
BONUS_PER_SUBGOAL = (abs(BONUS_SHIFT) + 1.0) * 200.0 / NUM_STAGES
INSTABILITY_REWARD = -100.0
HORIZON = 200

FRAME_SKIP = 4
TIMESTEP = 0.01
TARGET_RADIUS = 0.049
#: motor gears = peak joint torques (N m) from the Kinova actuator datasheet (as in dm-control)
GEARS = (30.5, 30.5, 30.5, 6.8, 6.8, 6.8)
JOINT_NAMES = tuple(f"joint_{k}" for k in range(1, 7))
#: limits given to the arm's continuous joints (the others keep dm-control's limits)
ADDED_JOINT_LIMITS = {"joint_1": np.pi, "joint_4": np.pi, "joint_5": np.pi, "joint_6": np.pi}
HOME_QPOS = np.array([0.0, 2.84, 4.71, 0.0, 0.0, 0.0])
RESET_QPOS_NOISE = 0.01
RESET_QVEL_NOISE = 0.001
HAND_BODY = "hand/hand"
CAMERA = "overview"
RENDER_SIZE = (240, 240)  # height, width

OBS_QPOS = slice(0, 6)
OBS_QVEL = slice(6, 12)
OBS_STAGE = slice(12, 15)
OBS_TASK = slice(15, 20)
OBS_HAND = slice(20, 23)
OBS_DIM = 23


def kinova_asset_dir() -> Path:
    """Folder of dm-control's Kinova Jaco MJCF files, found without importing dm_control."""
    spec = importlib.util.find_spec("dm_control")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("dm_control (1.0.28) is needed for the Jaco model assets")
    return Path(next(iter(spec.submodule_search_locations))) / "third_party" / "kinova"


def _look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Quaternion of a camera at `pos` looking at `target` with world z up."""
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    mat = np.stack([right, up, -forward], axis=1)  # camera looks along its -z
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def build_jaco_reach_spec() -> mujoco.MjSpec:
    """The Multistage Reacher scene as an MjSpec (see the module docstring for the choices)."""
    folder = kinova_asset_dir()
    arm = mujoco.MjSpec.from_file(str(folder / "jaco_arm.xml"))
    hand = mujoco.MjSpec.from_file(str(folder / "jaco_hand.xml"))
    for k in (1, 2, 3):
        hand.joint(f"finger_{k}").delete()
    arm.attach(hand, prefix="hand/", site=arm.site("wristsite"))

    arm.modelname = "jaco_reach_multistage"
    arm.option.timestep = TIMESTEP
    arm.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
    arm.option.gravity = [0.0, 0.0, -9.81]
    arm.body("b_base").pos = [0.0, 0.0, 0.0]

    for name, limit in ADDED_JOINT_LIMITS.items():
        joint = arm.joint(name)
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.range = [-limit, limit]
    for name, gear in zip(JOINT_NAMES, GEARS, strict=True):
        motor = arm.add_actuator(
            name=f"motor_{name}",
            target=name,
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            ctrllimited=mujoco.mjtLimited.mjLIMITED_TRUE,
            ctrlrange=[-1.0, 1.0],
        )
        motor.gear[0] = gear

    world = arm.worldbody
    arm.add_texture(
        name="sky",
        type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.3, 0.45, 0.6],
        rgb2=[0.0, 0.0, 0.0],
        width=64,
        height=384,
    )
    arm.add_material(name="floor", rgba=[0.55, 0.6, 0.65, 1.0], reflectance=0.05)
    world.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[1.5, 1.5, 0.05],
        material="floor",
        contype=1,
        conaffinity=3,
    )
    world.add_light(pos=[0.3, 0.0, 2.5], dir=[0.0, 0.0, -1.0], directional=True, diffuse=[0.7] * 3)
    target = world.add_body(name="target", mocap=True, pos=SUBGOALS[0])
    target.add_geom(
        name="target",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[TARGET_RADIUS, 0.0, 0.0],
        contype=0,
        conaffinity=0,
        mass=0.0,
        rgba=[0.9, 0.2, 0.2, 0.5],
    )
    cam_pos = np.array([1.25, -0.95, 0.95])
    world.add_camera(name=CAMERA, pos=cam_pos, quat=_look_at_quat(cam_pos, np.array([0.2, 0, 0.3])))
    return arm


@functools.cache
def _compiled_model() -> mujoco.MjModel:
    return build_jaco_reach_spec().compile()


def load_jaco_reach_model() -> mujoco.MjModel:
    """A private copy of the compiled model (compiled once per process)."""
    return copy.deepcopy(_compiled_model())


def solve_hand_ik(
    model: mujoco.MjModel,
    goal: np.ndarray,
    qpos0: np.ndarray,
    *,
    iterations: int = 500,
    tolerance: float = 1e-4,
) -> tuple[np.ndarray, float]:
    """Joint positions (within limits) putting the hand on `goal`: damped least squares from qpos0.

    Returns (qpos, remaining distance). Used to check reachability and to set solved states.
    """
    data = mujoco.MjData(model)
    hand = model.body(HAND_BODY).id
    lo, hi = model.jnt_range[:, 0], model.jnt_range[:, 1]
    q = np.clip(np.asarray(qpos0, dtype=np.float64), lo, hi)
    jac = np.zeros((3, model.nv))
    err_norm = np.inf
    for _ in range(iterations):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        err = np.asarray(goal, dtype=np.float64) - data.xpos[hand]
        err_norm = float(np.linalg.norm(err))
        if err_norm < tolerance:
            break
        mujoco.mj_jacBody(model, data, jac, None, hand)
        step = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(3), err)
        q = np.clip(q + step, lo, hi)
    return q, err_norm


def reach_action(
    model: mujoco.MjModel, data: mujoco.MjData, goal: np.ndarray, speed: float = 2.0
) -> np.ndarray:
    """A scripted torque action moving the hand toward `goal` (gravity-compensated velocity servo).

    Only a tool for tests and demos: it shows that the motors can take the hand to the sub-goals.
    """
    hand = model.body(HAND_BODY).id
    jac = np.zeros((3, model.nv))
    mujoco.mj_jacBody(model, data, jac, None, hand)
    err = np.asarray(goal, dtype=np.float64) - data.xpos[hand]
    qvel_des = jac.T @ np.linalg.solve(jac @ jac.T + 1e-2 * np.eye(3), err)
    qvel_des *= speed / max(1.0, float(np.abs(qvel_des).max()))
    inertia = model.dof_armature + 0.5
    torque = data.qfrc_bias + 15.0 * inertia * (qvel_des - data.qvel)
    return np.clip(torque / model.actuator_gear[:, 0], -1.0, 1.0).astype(np.float32)


class JacoReachTaskEnv(gym.Env):
    """One task of the Multistage Reacher (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": round(1.0 / (FRAME_SKIP * TIMESTEP)),
    }

    def __init__(self, task: int, seed: int | None = None, render_mode: str | None = None) -> None:
        if not 0 <= task < NUM_TASKS:
            raise ValueError(f"task must be in [0, {NUM_TASKS}), got {task}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.task = task
        self.render_mode = render_mode
        self.is_stay = TASK_SEQUENCES[task] is None
        self.sparse = task == SPARSE_TASK
        self.model = load_jaco_reach_model()
        self.data = mujoco.MjData(self.model)
        self._hand_id = self.model.body(HAND_BODY).id
        self._mocap_id = int(self.model.body_mocapid[self.model.body("target").id])
        self._bind_views()
        self._shift = BONUS_SHIFT if task == BONUS_TASK else 0.0
        self._camera = OffscreenCamera(self.model, *RENDER_SIZE, CAMERA)

        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        self._obs = np.zeros(OBS_DIM, dtype=np.float32)
        self._obs[OBS_TASK.start + task] = 1.0
        self._last_obs = self._obs.copy()
        if self.is_stay:
            self._goals = np.zeros((1, 3))
        else:
            self._goals = SUBGOALS[list(TASK_SEQUENCES[task])].copy()
        self._stage = 0
        self._stay_count = 0
        if seed is not None:
            self.reset(seed=seed)

    _VIEWS = ("_bad_warnings", "_qpos", "_qvel", "_qacc", "_ctrl", "_hand", "_target")

    def _bind_views(self) -> None:
        """Cache live views into mjData (pybind attribute access costs more than the arithmetic)."""
        data = self.data
        bad = slice(
            int(mujoco.mjtWarning.mjWARN_BADQPOS), int(mujoco.mjtWarning.mjWARN_BADQACC) + 1
        )
        self._bad_warnings = data.warning.number[bad]
        self._qpos, self._qvel, self._qacc = data.qpos, data.qvel, data.qacc
        self._ctrl = data.ctrl
        self._hand = data.xpos[self._hand_id]
        self._target = data.mocap_pos[self._mocap_id]

    def __getstate__(self) -> dict[str, Any]:
        # views would be pickled as detached copies, and a GL context cannot be pickled at all
        return {k: v for k, v in self.__dict__.items() if k not in self._VIEWS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

    # ------------------------------------------------------------------------------ state access
    @property
    def hand_position(self) -> np.ndarray:
        """World xyz of the hand (a copy)."""
        return self.data.xpos[self._hand_id].copy()

    @property
    def target_position(self) -> np.ndarray:
        """World xyz of the current goal (a copy)."""
        return self.data.mocap_pos[self._mocap_id].copy()

    @property
    def stage(self) -> int:
        """Sub-goals reached so far (stay task: success steps // 30), 0..3."""
        return self._stage

    @property
    def goals(self) -> np.ndarray:
        """This episode's goal sequence (stay task: the one reset position), a copy."""
        return self._goals.copy()

    def set_state(
        self, qpos: np.ndarray, qvel: np.ndarray | None = None, stage: int | None = None
    ) -> np.ndarray:
        """Set joint positions/velocities (and optionally the stage); returns the observation.

        For tests and demos: lets a solved or failed state be set directly.
        """
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.0 if qvel is None else qvel
        if stage is not None:
            if self.is_stay:
                self._stay_count = int(stage) * STAY_STEPS_PER_STAGE
                self._stage = int(stage)
            else:
                self._stage = int(stage)
                self.data.mocap_pos[self._mocap_id] = self._goals[min(self._stage, NUM_STAGES - 1)]
        mujoco.mj_forward(self.model, self.data)
        self._last_obs = self._observation()
        return self._last_obs.copy()

    def _observation(self) -> np.ndarray:
        obs = self._obs
        obs[OBS_QPOS] = self._qpos
        obs[OBS_QVEL] = self._qvel
        obs[OBS_STAGE] = 0.0
        # the stage reaches 3 on the terminal step: keep the index in range (spec bug 11)
        obs[OBS_STAGE.start + min(self._stage, NUM_STAGES - 1)] = 1.0
        obs[OBS_HAND] = self._hand
        return obs.copy()

    # ------------------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        data.qpos[:] = HOME_QPOS + self.np_random.uniform(
            -RESET_QPOS_NOISE, RESET_QPOS_NOISE, model.nq
        )
        data.qvel[:] = self.np_random.uniform(-RESET_QVEL_NOISE, RESET_QVEL_NOISE, model.nv)
        mujoco.mj_forward(model, data)
        self._stage = 0
        self._stay_count = 0
        if self.is_stay:
            # the goal is this env's own hand position at reset, copied (fixes spec bug 10)
            self._goals = data.xpos[self._hand_id][None, :].copy()
        data.mocap_pos[self._mocap_id] = self._goals[0]
        mujoco.mj_forward(model, data)
        self._last_obs = self._observation()
        info = {"task_id": self.task, "stages_completed": 0, "full_success": False}
        return self._last_obs.copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        ctrl = self._ctrl
        ctrl[:] = action
        np.clip(ctrl, -1.0, 1.0, out=ctrl)
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        # MuJoCo resets the state and counts a warning on nan/inf/huge qpos, qvel or qacc
        if self._bad_warnings.any() or not math.isfinite(self._qpos.sum() + self._qvel.sum()):
            info = self._info(False, 0.0, 0.0, 0.0, math.nan)
            info["unstable"] = True
            return self._last_obs.copy(), INSTABILITY_REWARD, True, False, info

        dist = math.dist(self._hand.tolist(), self._target.tolist())
        success = dist < SUCCESS_RADIUS
        if self.is_stay:
            self._stay_count += int(success)
            self._stage = self._stay_count // STAY_STEPS_PER_STAGE
            stage_reward = 0.0
        else:
            if success:
                self._stage += 1
                if self._stage < NUM_STAGES:
                    self._target[:] = self._goals[self._stage]
            if self.task == BONUS_TASK:
                stage_reward = BONUS_PER_SUBGOAL if success else 0.0
            else:
                remaining = max(NUM_STAGES - self._stage, 0)
                stage_reward = -TIME_PENALTY * remaining if remaining else 0.0
        terminated = self._stage >= NUM_STAGES

        dist_reward = 0.0 if self.sparse else -dist
        nv = len(self._qvel)
        ctrl_reward = (
            -0.01 * sum(a * a for a in ctrl.tolist())
            - 0.001 * sum(map(abs, self._qvel.tolist())) / nv
            - 1e-5 * sum(map(abs, self._qacc.tolist())) / nv
        )
        reward = dist_reward + stage_reward + ctrl_reward + self._shift

        self._last_obs = self._observation()
        info = self._info(success, dist_reward, stage_reward, ctrl_reward, dist)
        return self._last_obs.copy(), reward, terminated, False, info

    def _info(
        self, success: bool, dist_r: float, stage_r: float, ctrl_r: float, dist: float
    ) -> dict[str, Any]:
        return {
            "success": bool(success),
            "stages_completed": int(self._stage),
            "full_success": bool(self._stage >= NUM_STAGES),
            "task_id": self.task,
            "distance": dist,
            "reward_dist": dist_r,
            "reward_stage": stage_r,
            "reward_ctrl": ctrl_r,
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        mujoco.mj_kinematics(self.model, self.data)  # show a target moved during the last step
        return self._camera.frame(self.data)

    def close(self) -> None:
        self._camera.close()


class JacoReachMT5Env(MultiTaskEnv):
    """The five Multistage Reacher tasks as one multi-task family."""

    task_names = (
        "reach-S0-S1-S2",
        "reach-S0-S1-S3-bonus",
        "reach-S1-S3-S2",
        "reach-S1-S2-S0-sparse",
        "stay",
    )
    horizon = HORIZON
    min_reward = -5.0
    onehot_mode = "zero"
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "stages_completed": ("StagesCompleted", "last"),
        "full_success": ("FullSuccessRate", "max"),
    }
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    @property
    def onehot_start(self) -> int:
        """The task one-hot sits before the hand position (dims 15..19), not at the end."""
        return OBS_TASK.start

    def split_observation(self, obs: np.ndarray, include_task_id: bool = False) -> np.ndarray:
        """Network input: zero the task one-hot (unless include_task_id) and always the hand
        position, as the original did (spec bug 9, kept for comparability)."""
        out = np.array(obs, copy=True)
        if not include_task_id:
            out[..., OBS_TASK] = 0.0
        out[..., OBS_HAND] = 0.0
        return out

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
            raise TypeError(f"JacoReachMT5 takes no task options, got {sorted(task_kwargs)}")
        return JacoReachTaskEnv(task, seed=seed, render_mode=render_mode)
