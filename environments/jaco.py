"""JacoReachMT5-v1, the "Multistage Reacher": a 6-joint Kinova Jaco arm visits three sub-goals.

The robot is the one the paper's authors ran: a Kinova Jaco arm without fingers (Roboti's MuJoCo
"Jaco v1.31" model, meshes from Kinova's public description). It is built here with
`mujoco.MjSpec` from that model's numbers (`_LINKS`, `_INERTIALS` below); the seven link meshes
(binary STL, metres) are the authors' files, shipped unchanged in
`environments/assets/jaco_multistage/meshes/` under their MIT licence (`LICENSE` next to them).

* base body `jaco_link_base` at (0, 0, 0.25) with a capsule post down to a floor plane at z = 0;
  six links in a chain, each with one limited hinge at its origin (damping 0.5, armature 0.01):
  joint 1 +-0.8, joint 2 [-1.5, 0.7], joints 3-6 +-0.698 rad; explicit inertials (not computed
  from the meshes);
* the arm's geoms (meshes and the post) collide with the floor only, never with each other; every
  geom has margin 0.001;
* six torque motors, ctrlrange +-1, gear 5 on joint 1 and 10 on joints 2-6;
* a mocap sphere `target` (radius 0.049, no collision) marking the current goal;
* Euler integrator, timestep 0.01, gravity 9.8, 10 solver iterations, 4 physics steps per env
  step (control period 0.04 s).

The "hand" is the origin of body `jaco_link_hand` (the model has no fingers). Reset: the model's
qpos0 + U(-0.01, 0.01), joint velocities U(-0.001, 0.001); at qpos0 the hand is at about
(0.410, 0.119, 0.239), 0.17-0.45 m from the sub-goals. Every sub-goal is reachable inside the
joint limits.

Two quirks of the model are kept, because they are the benchmark as the paper ran it:

* joint 5's `ref` is -2.8 rad, outside its own range, so the reset pose starts beyond that limit
  and the limit pushes the joint back at once (with zero action the hand moves ~0.14 m in the
  first 4 steps);
* joint 2's motor is weak: holding the arm against gravity at the reset pose needs about 1.07x its
  peak torque, so the arm sags under zero action (hand height 0.24 -> 0.09 m over an episode),
  and the hand can pass through the far sub-goals S2 and S3, and its reset position (the stay
  goal), but not be held still there.

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
GRAVITY = 9.8
SOLVER_ITERATIONS = 10
GEOM_MARGIN = 0.001
JOINT_DAMPING = 0.5
JOINT_ARMATURE = 0.01
BASE_HEIGHT = 0.25
TARGET_RADIUS = 0.049
#: motor gears (peak joint torques, N m) of joints 1..6
GEARS = (5.0, 10.0, 10.0, 10.0, 10.0, 10.0)
JOINT_NAMES = tuple(f"jaco_joint_{k}" for k in range(1, 7))
HAND_BODY = "jaco_link_hand"
RESET_QPOS_NOISE = 0.01
RESET_QVEL_NOISE = 0.001
CAMERA = "overview"
RENDER_SIZE = (240, 240)  # height, width
MESH_DIR = Path(__file__).resolve().parent / "assets" / "jaco_multistage" / "meshes"

OBS_QPOS = slice(0, 6)
OBS_QVEL = slice(6, 12)
OBS_STAGE = slice(12, 15)
OBS_TASK = slice(15, 20)
OBS_HAND = slice(20, 23)
OBS_DIM = 23
#: a step's `info["reward_info"]` (float32), what CDS's `reward_fn` needs beyond the stored
#: transition: the hand position the step's reward read (in float32, then what float32 rounded
#: off, so that their sum is the float64 position and success at the 0.05 radius is decided
#: alike), its velocity and acceleration penalties, the hand's position at the episode's reset
#: (the stay task's goal), and 1 on a simulator instability
INFO_HAND = slice(0, 3)
INFO_HAND_REST = slice(3, 6)
INFO_MOTION = 6
INFO_RESET_HAND = slice(7, 10)
INFO_UNSTABLE = 10
REWARD_INFO_DIM = 11

_Vec3 = tuple[float, float, float]
_Quat = tuple[float, float, float, float]
_JOINT_LIMIT = 0.698132
#: the links after the base, in chain order: (body, pos, quat (wxyz) in the parent's frame,
#: hinge axis, joint range, joint ref)
_LINKS: tuple[tuple[str, _Vec3, _Quat, _Vec3, tuple[float, float], float], ...] = (
    ("jaco_link_1", (0, 0, 0.1535), (0, 0, 1, 0), (0, 0, -1), (-0.8, 0.8), 0.0),
    ("jaco_link_2", (0, 0, -0.1185), (0, 0, 0.707107, 0.707107), (0, 0, 1), (-1.5, 0.7), 0.0),
    ("jaco_link_3", (0.41, 0, 0), (0, 0.707107, 0.707107, 0), (0, 0, -1),
     (-_JOINT_LIMIT, _JOINT_LIMIT), 0.0),
    ("jaco_link_4", (0.207, 0, -0.01125), (0, 0.707107, 0, -0.707107), (0, 0, -1),
     (-_JOINT_LIMIT, _JOINT_LIMIT), 0.0),
    ("jaco_link_5", (0.0343, 0, -0.06588), (0.887011, 0, -0.461749, 0), (0, 0, -1),
     (-_JOINT_LIMIT, _JOINT_LIMIT), -2.8),
    ("jaco_link_hand", (0.0343, 0, -0.06588), (0.627211, -0.326506, -0.326506, 0.627211),
     (0, 0, -1), (-_JOINT_LIMIT, _JOINT_LIMIT), 0.0),
)
_WRIST_INERTIAL = (
    (0.00914824, 4.53141e-08, -0.0370941),
    (0.971237, -1.92989e-05, -0.238115, 3.23646e-05),
    0.227408,
    (0.000176463, 0.00017225, 0.000108303),
)
#: explicit inertials of every arm body: (pos, quat, mass, diagonal inertia)
_INERTIALS: dict[str, tuple[_Vec3, _Quat, float, _Vec3]] = {
    "jaco_link_base": (
        (-3.14012e-08, 0.000451919, 0.0770704),
        (1, -0.000920048, 6.51183e-06, 5.62643e-05),
        0.787504,
        (0.00187445, 0.00186316, 0.000676952),
    ),
    "jaco_link_1": (
        (-1.14317e-06, 0.0102141, -0.0637045),
        (0.702792, 0.0778988, -0.0778994, 0.702813),
        0.613151,
        (0.00149348, 0.00144012, 0.000401632),
    ),
    "jaco_link_2": (
        (0.206657, -1.55187e-07, -0.030675),
        (1, 0, 0, 0),
        1.85031,
        (0.0402753, 0.0398125, 0.00121953),
    ),
    "jaco_link_3": (
        (0.0847979, -1.18469e-07, -0.020283),
        (2.33799e-05, 0.694869, 1.96996e-05, 0.719136),
        0.70372,
        (0.00386732, 0.00373181, 0.000358773),
    ),
    "jaco_link_4": _WRIST_INERTIAL,
    "jaco_link_5": _WRIST_INERTIAL,
    "jaco_link_hand": (
        (0.0036132, -6.2241e-05, -0.0583749),
        (0.669114, -0.237618, -0.23799, 0.66271),
        0.58074,
        (0.000817146, 0.000671192, 0.000606807),
    ),
}
_ARM_RGBA = (0.07, 0.07, 0.1, 1.0)
_HAND_RGBA = (0.13, 0.13, 0.13, 1.0)


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


def _add_arm_body(
    spec: mujoco.MjSpec, parent: mujoco.MjsBody, name: str, pos: _Vec3, quat: _Quat
) -> mujoco.MjsBody:
    """A body of the arm with its explicit inertial and its mesh geom."""
    ipos, iquat, mass, inertia = _INERTIALS[name]
    body = parent.add_body(
        name=name, pos=pos, quat=quat, ipos=ipos, iquat=iquat, mass=mass, inertia=inertia
    )
    body.explicitinertial = True
    spec.add_mesh(name=name, file=f"{name}.stl")
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_MESH,
        meshname=name,
        group=0,
        contype=1,
        conaffinity=0,
        margin=GEOM_MARGIN,
        rgba=_HAND_RGBA if name == HAND_BODY else _ARM_RGBA,
    )
    return body


def build_jaco_reach_spec() -> mujoco.MjSpec:
    """The Multistage Reacher scene as an MjSpec (see the module docstring)."""
    spec = mujoco.MjSpec()
    spec.modelname = "jaco_reach_multistage"
    spec.compiler.degree = False
    spec.meshdir = str(MESH_DIR)
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
    spec.option.gravity = [0.0, 0.0, -GRAVITY]
    spec.option.iterations = SOLVER_ITERATIONS

    world = spec.worldbody
    spec.add_texture(
        name="sky",
        type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.3, 0.45, 0.6],
        rgb2=[0.0, 0.0, 0.0],
        width=64,
        height=384,
    )
    spec.add_material(name="floor", rgba=[0.55, 0.6, 0.65, 1.0], reflectance=0.05)
    world.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[2.0, 2.0, 1.0],
        material="floor",
        contype=1,
        conaffinity=1,
        margin=GEOM_MARGIN,
    )
    world.add_light(pos=[1.0, 1.0, 1.5], dir=[-1.0, -1.0, -1.3], directional=True)

    base = _add_arm_body(spec, world, "jaco_link_base", (0.0, 0.0, BASE_HEIGHT), (1, 0, 0, 0))
    base.add_geom(
        name="jaco_base_post",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        pos=[0.0, 0.0, -0.125],
        size=[0.045, 0.125, 0.0],
        group=0,
        contype=1,
        conaffinity=0,
        margin=GEOM_MARGIN,
        rgba=_ARM_RGBA,
    )
    parent = base
    for (name, pos, quat, axis, limits, ref), joint in zip(_LINKS, JOINT_NAMES, strict=True):
        parent = _add_arm_body(spec, parent, name, pos, quat)
        parent.add_joint(
            name=joint,
            type=mujoco.mjtJoint.mjJNT_HINGE,
            axis=axis,
            limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            range=limits,
            ref=ref,
            damping=JOINT_DAMPING,
            armature=JOINT_ARMATURE,
        )

    target = world.add_body(name="target", mocap=True, pos=[0.0, 0.0, 0.05])
    target.add_geom(
        name="target",
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[TARGET_RADIUS, 0.0, 0.0],
        contype=0,
        conaffinity=0,
        margin=GEOM_MARGIN,
        rgba=[0.9, 0.2, 0.2, 1.0],
    )
    for joint, gear in zip(JOINT_NAMES, GEARS, strict=True):
        motor = spec.add_actuator(
            name=f"motor_{joint}",
            target=joint,
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            ctrllimited=mujoco.mjtLimited.mjLIMITED_TRUE,
            ctrlrange=[-1.0, 1.0],
        )
        motor.gear[0] = gear
    cam_pos = np.array([1.25, -0.95, 0.95])
    world.add_camera(name=CAMERA, pos=cam_pos, quat=_look_at_quat(cam_pos, np.array([0.2, 0, 0.3])))
    return spec


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
    """Joint positions (within limits) putting the hand on `goal`: damped least squares from qpos0
    (clamped into the joint ranges), kinematics only.

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
        self._reward_info = np.zeros(REWARD_INFO_DIM, dtype=np.float32)
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
        # envs saved before reward_info existed: only CDS reads it, and no CDS run had them
        state.setdefault("_reward_info", np.zeros(REWARD_INFO_DIM, dtype=np.float32))
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
        self, qpos: np.ndarray, qvel: np.ndarray | None = None, stage: int | None = None,
        reset_hand: np.ndarray | None = None,
    ) -> np.ndarray:
        """Set joint positions/velocities (and optionally the stage, and the hand's reset
        position: the stay task's goal); returns the observation.

        For tests and demos: lets a solved or failed state be set directly.
        """
        if reset_hand is not None:
            self._reward_info[INFO_RESET_HAND] = reset_hand
            if self.is_stay:
                self._goals = np.asarray(reset_hand, dtype=np.float64)[None, :].copy()
                self.data.mocap_pos[self._mocap_id] = self._goals[0]
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
        # the stage reaches 3 on the terminal step: keep the index in range (the original
        # indexed past the 3-slot one-hot there, harmless only because the episode ends)
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
        data.qpos[:] = model.qpos0 + self.np_random.uniform(
            -RESET_QPOS_NOISE, RESET_QPOS_NOISE, model.nq
        )
        data.qvel[:] = self.np_random.uniform(-RESET_QVEL_NOISE, RESET_QVEL_NOISE, model.nv)
        mujoco.mj_forward(model, data)
        self._stage = 0
        self._stay_count = 0
        self._reward_info[INFO_RESET_HAND] = data.xpos[self._hand_id]
        if self.is_stay:
            # the goal is this env's own hand position at reset, copied (the original shared
            # one goal list between the train and test env, filled with a live view of the
            # training simulator's hand position, so its test env was no stay task)
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
            self._reward_info[INFO_UNSTABLE] = 1.0
            info = self._info(False, 0.0, 0.0, 0.0, math.nan)
            info["unstable"] = True
            self._reward_info[INFO_UNSTABLE] = 0.0
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
        velocity_penalty = 0.001 * sum(map(abs, self._qvel.tolist())) / nv
        acceleration_penalty = 1e-5 * sum(map(abs, self._qacc.tolist())) / nv
        ctrl_reward = (-0.01 * sum(a * a for a in ctrl.tolist()) - velocity_penalty
                       - acceleration_penalty)
        motion_penalty = -velocity_penalty - acceleration_penalty
        reward = dist_reward + stage_reward + ctrl_reward + self._shift
        info_hand = self._reward_info[INFO_HAND]
        info_hand[:] = self._hand
        self._reward_info[INFO_HAND_REST] = self._hand - info_hand
        self._reward_info[INFO_MOTION] = motion_penalty

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
            "reward_info": self._reward_info.copy(),
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
    reward_fn_problem = None
    reward_info_dim = REWARD_INFO_DIM
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "stages_completed": ("StagesCompleted", "last"),
        "full_success": ("FullSuccessRate", "max"),
    }
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    @property
    def onehot_start(self) -> int:
        """The task one-hot sits before the hand position (dims 15..19), not at the end."""
        return OBS_TASK.start

    def reward_fn(
        self, task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
        reward_info: np.ndarray | None = None,
    ) -> np.ndarray:
        """Task `task`'s step reward of stored transitions: its target is its sub-goal of the
        stage `obs` shows (the stay task: the reset hand position kept in `reward_info`), read
        against the hand position, penalties and instability flag kept in `reward_info`. All
        tasks run the same arm (the target is a mocap sphere without collision), so this is the
        reward `task`'s env pays for that step from that state and stage, up to float32
        storage of the penalties. The episode's termination and next stage stay those the
        collecting task stored."""
        if reward_info is None:
            raise ValueError("JacoReachMT5's reward_fn needs the stored reward_info")
        info = np.asarray(reward_info, dtype=np.float64)
        hand = info[..., INFO_HAND] + info[..., INFO_HAND_REST]
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        ctrl_reward = -0.01 * (a * a).sum(axis=-1) + info[..., INFO_MOTION]
        sequence = TASK_SEQUENCES[task]
        if sequence is None:
            dist = np.linalg.norm(hand - info[..., INFO_RESET_HAND], axis=-1)
            stage_reward: np.ndarray | float = 0.0
        else:
            stage = np.argmax(np.asarray(obs)[..., OBS_STAGE], axis=-1)
            dist = np.linalg.norm(hand - SUBGOALS[list(sequence)][stage], axis=-1)
            success = dist < SUCCESS_RADIUS
            if task == BONUS_TASK:
                stage_reward = np.where(success, BONUS_PER_SUBGOAL, 0.0)
            else:
                stage_reward = -TIME_PENALTY * np.maximum(NUM_STAGES - stage - success, 0)
        dist_reward = 0.0 if task == SPARSE_TASK else -dist
        shift = BONUS_SHIFT if task == BONUS_TASK else 0.0
        reward = dist_reward + stage_reward + ctrl_reward + shift
        return np.where(info[..., INFO_UNSTABLE] > 0.5, INSTABILITY_REWARD, reward)

    def split_observation(self, obs: np.ndarray, include_task_id: bool = False) -> np.ndarray:
        """Network input: zero the task one-hot (unless include_task_id) and always the hand
        position, as the original did even with include_task_id (kept for comparability)."""
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
