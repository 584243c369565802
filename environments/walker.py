"""Walker2dMT4-v0: four locomotion tasks for one planar walker (forward, backward, balance, crawl).

The body is gymnasium's `walker2d.xml` (torso, thighs, legs, feet; right foot friction 0.9, left
foot 1.9; RK4 at 0.002 s; six motors, gear 100, ctrl in [-1, 1]) read from the installed package
and simulated with the official `mujoco` bindings at frame_skip 4 (dt 0.008 s). The crawl task adds
a ceiling box (half size 6 x 2 x 0.1, centre x 8, z 1.0, so its underside is at z 0.9 over
x in [2, 14]) with `mujoco.MjSpec`.

Per step, with v = dx/dt of the root, angle = root pitch, delta_h = torso z - max(foot z) (body
frames), foot speeds |d foot-joint angle| / dt and ctrl = -0.001 * sum(a^2):

* forward:  (3 - |v - 3|) + 0.1 cos(angle) - |1.1 - delta_h| + ctrl + 1 - 0.01 (|fr'| + |fl'|)
* backward: the same with v replaced by -v
* balance:  -|v| + 0.1 cos(angle) - 0.5 |1.1 - delta_h| + ctrl + 1
* crawl:    2 (3 - |v - 3|) + 0.1 cos(angle) + ctrl + 1 - 0.01 (|fr'| + |fl'|) - 10 [ceiling hit]

Episodes terminate when the torso height qpos[1] drops below 0.8 (crawl: 0.3, or on any contact
with the ceiling). Success means surviving `HORIZON` steps: `info["success"]` turns true on the
1000th step, which is NOT a termination (time-outs are truncations made by the sampler, so the
last transition is bootstrapped; the original flagged it terminal, so it was never bootstrapped).

Differences from the original walker_v1.xml / walker_v2.xml (mujoco-py, MuJoCo 2): the body,
joints, motors, frictions, integrator and timestep match; the two decorative target boxes of v1
and v2's unused curbs and short ceilings are left out; the ceiling is fixed in the model instead of
being moved there at reset; the floor plane is widened to +-100 m for rendering (a plane collides
everywhere anyway). The original's external pushes had probability 0 and are not implemented.
After the physics steps, body positions (and the crawl task's contacts) are recomputed for the
reached state, so rewards and terminations use the state the observation shows (mujoco-py read
them one physics sub-step stale). `info["x_velocity"]` is the signed dx/dt for every task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.utils import seeding

from environments.multitask import MultiTaskEnv
from environments.rendering import OffscreenCamera

HORIZON = 1000
FRAME_SKIP = 4
NUM_TASKS = 4
INIT_NOISE = 0.01
QVEL_CLIP = 10.0
CTRL_COST = 1e-3
TARGET_SPEED = 3.0
TARGET_DELTA_H = 1.1
CEILING_NAME = "ceiling"
CEILING_HALF_SIZE = (6.0, 2.0, 0.1)
CEILING_POS = (8.0, 0.0, 1.0)
FLOOR_HALF_LENGTH = 100.0  # visual size only: a MuJoCo plane collides everywhere

# qpos layout of walker2d.xml: rootx, rootz, rooty, thigh, leg, foot, thigh_l, leg_l, foot_l
_X, _HEIGHT, _ANGLE, _RIGHT_FOOT, _LEFT_FOOT = 0, 1, 2, 5, 8


@dataclass(frozen=True)
class WalkerTask:
    """The reward weights and limits that tell one walker task from another."""

    name: str
    velocity_mode: str  # "forward": 3 - |v - 3|; "backward": 3 - |-v - 3|; "still": -|v|
    velocity_weight: float
    height_weight: float  # weight of -|1.1 - delta_h|
    foot_weight: float  # weight of -(|fr'| + |fl'|)
    collision_penalty: float
    min_height: float
    random_steps: int
    ceiling: bool


TASKS: tuple[WalkerTask, ...] = (
    WalkerTask("forward", "forward", 1.0, 1.0, 0.01, 0.0, 0.8, 5, False),
    WalkerTask("backward", "backward", 1.0, 1.0, 0.01, 0.0, 0.8, 5, False),
    WalkerTask("balance", "still", 1.0, 0.5, 0.0, 0.0, 0.8, 10, False),
    WalkerTask("crawl", "forward", 2.0, 0.0, 0.01, 10.0, 0.3, 5, True),
)


def walker_xml_path() -> str:
    """Path of gymnasium's walker2d.xml (right foot friction 0.9, left 1.9), installed copy."""
    return os.path.join(os.path.dirname(gym.__file__), "envs", "mujoco", "assets", "walker2d.xml")


def build_walker_model(ceiling: bool) -> mujoco.MjModel:
    """Compile the walker scene; `ceiling` adds the crawl task's ceiling box."""
    spec = mujoco.MjSpec.from_file(walker_xml_path())
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_RK4
    floor = spec.geom("floor")
    floor.size = [FLOOR_HALF_LENGTH, FLOOR_HALF_LENGTH, floor.size[2]]
    plane_material = spec.material("MatPlane")
    # keep the checker squares the size they have on the stock 40 m floor
    plane_material.texrepeat = [60.0 * FLOOR_HALF_LENGTH / 40.0] * 2
    if ceiling:
        spec.worldbody.add_geom(
            name=CEILING_NAME,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(CEILING_HALF_SIZE),
            pos=list(CEILING_POS),
            contype=0,
            conaffinity=1,
            condim=3,
            rgba=[0.55, 0.3, 0.25, 1.0],
        )
    return spec.compile()


class WalkerTaskEnv(gym.Env):
    """One task of Walker2dMT4: a planar walker with the task's reward and termination.

    Observation (float32, 17 + N): qpos[1:] (height, pitch, 6 joints), clip(qvel, -10, 10) and the
    task one-hot at the end. Action: 6 motor commands in [-1, 1].
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"],
        "render_fps": round(1.0 / (0.002 * FRAME_SKIP)),
    }

    def __init__(
        self,
        task: int,
        num_tasks: int = NUM_TASKS,
        seed: int | None = None,
        render_mode: str | None = None,
        render_width: int = 320,
        render_height: int = 240,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.task = task
        self.config = TASKS[task]
        self.render_mode = render_mode
        self.model = build_walker_model(self.config.ceiling)
        self.data = mujoco.MjData(self.model)
        self._camera = OffscreenCamera(self.model, int(render_height), int(render_width), "track")
        self.dt = self.model.opt.timestep * FRAME_SKIP
        self._init_qpos = self.model.qpos0.copy()
        self._torso = self.model.body("torso").id
        self._feet = (self.model.body("foot").id, self.model.body("foot_left").id)
        self._ceiling = self.model.geom(CEILING_NAME).id if self.config.ceiling else -1

        nq, nv = self.model.nq, self.model.nv
        self._onehot = np.zeros(num_tasks, dtype=np.float32)
        self._onehot[task] = 1.0
        self._obs_dim = (nq - 1) + nv + num_tasks
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self._obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        self._steps = 0
        self._np_random, _ = seeding.np_random(seed)

    # ------------------------------------------------------------------------------ helpers
    def _observation(self) -> np.ndarray:
        nq, nv = self.model.nq, self.model.nv
        obs = np.empty(self._obs_dim, dtype=np.float32)
        obs[: nq - 1] = self.data.qpos[1:]
        np.clip(self.data.qvel, -QVEL_CLIP, QVEL_CLIP, out=obs[nq - 1 : nq - 1 + nv])
        obs[nq - 1 + nv :] = self._onehot
        return obs

    def _sync_derived(self) -> None:
        """Bring body positions (and, for crawl, contacts) up to date with the current qpos."""
        if self.config.ceiling:
            mujoco.mj_fwdPosition(self.model, self.data)
        else:
            mujoco.mj_kinematics(self.model, self.data)

    def ceiling_contact(self) -> bool:
        """Whether any current contact involves the ceiling (always False without one)."""
        if self._ceiling < 0 or self.data.ncon == 0:
            return False
        contact = self.data.contact
        return bool(
            np.any(contact.geom1 == self._ceiling) or np.any(contact.geom2 == self._ceiling)
        )

    def delta_h(self) -> float:
        """Torso height above the higher foot (body frames), the gait-posture term's input."""
        z = self.data.xpos[:, 2]
        return float(z[self._torso] - max(z[self._feet[0]], z[self._feet[1]]))

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Place the walker (for tests and demos); returns the new observation."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)
        return self._observation()

    @property
    def elapsed_steps(self) -> int:
        return self._steps

    # ------------------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self._init_qpos + rng.uniform(-INIT_NOISE, INIT_NOISE, self.model.nq)
        self.data.qvel[:] = rng.uniform(-INIT_NOISE, INIT_NOISE, self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        for _ in range(self.config.random_steps):
            self.data.ctrl[:] = rng.uniform(-1.0, 1.0, self.model.nu)
            mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        self._sync_derived()
        self._steps = 0
        return self._observation(), {"task_id": self.task}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        cfg = self.config
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        qpos = self.data.qpos
        x_before, right_before, left_before = qpos[_X], qpos[_RIGHT_FOOT], qpos[_LEFT_FOOT]
        self.data.ctrl[:] = a
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        self._sync_derived()
        self._steps += 1

        v = (qpos[_X] - x_before) / self.dt
        if cfg.velocity_mode == "forward":
            velocity_term = TARGET_SPEED - abs(v - TARGET_SPEED)
        elif cfg.velocity_mode == "backward":
            velocity_term = TARGET_SPEED - abs(-v - TARGET_SPEED)
        else:
            velocity_term = -abs(v)
        foot_speed = abs(qpos[_RIGHT_FOOT] - right_before) + abs(qpos[_LEFT_FOOT] - left_before)
        foot_speed /= self.dt
        hit = self.ceiling_contact()

        r_velocity = cfg.velocity_weight * velocity_term
        r_angle = 0.1 * float(np.cos(qpos[_ANGLE]))
        r_height = (
            -cfg.height_weight * abs(TARGET_DELTA_H - self.delta_h()) if cfg.height_weight else 0.0
        )
        r_ctrl = -CTRL_COST * float(np.dot(a, a))
        r_alive = 1.0
        r_foot = -cfg.foot_weight * foot_speed
        r_collision = -cfg.collision_penalty if hit else 0.0
        reward = r_velocity + r_angle + r_height + r_ctrl + r_alive + r_foot + r_collision

        terminated = bool(qpos[_HEIGHT] < cfg.min_height or hit)
        info = {
            "success": (not terminated) and self._steps >= HORIZON,
            "task_id": self.task,
            "x_velocity": float(v),
            "reward_velocity": float(r_velocity),
            "reward_angle": r_angle,
            "reward_height": float(r_height),
            "reward_ctrl": r_ctrl,
            "reward_alive": r_alive,
            "reward_foot": float(r_foot),
            "reward_collision": r_collision,
        }
        return self._observation(), float(reward), terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._camera.frame(self.data)

    def close(self) -> None:
        self._camera.close()


class Walker2dMT4Env(MultiTaskEnv):
    """Forward, backward, balance and crawl (task ids 0..3) for one planar walker."""

    task_names = tuple(t.name for t in TASKS)
    horizon = HORIZON
    min_reward = 0.0
    onehot_mode = "zero"
    reward_fn_problem = (
        "its reward needs the root's x displacement over the step (velocity term; crawl: the "
        "ceiling contact depends on x), and the observation starts at qpos[1]")
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "x_velocity": ("Velocity", "mean")
    }
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def make_task_env(
        self,
        task: int,
        *,
        seed: int | None,
        evaluation: bool,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> gym.Env:
        unknown = set(task_kwargs) - {"render_width", "render_height"}
        if unknown:
            raise TypeError(
                f"Walker2dMT4 takes only render_width/render_height, got {sorted(unknown)}"
            )
        return WalkerTaskEnv(
            task, num_tasks=len(TASKS), seed=seed, render_mode=render_mode, **task_kwargs
        )
