"""MetaWorldCDS-v1: door-open, door-close, drawer-open, drawer-close in one Meta-World scene.

The CDS paper's setup: every task sees the same table with a drawer and a door-lock safe
(``environments/assets/door_drawer.xml``), so the tasks share state space and dynamics and differ
only in reward. Each task subclasses its Meta-World v3 task class (rewards, success rules and reset
logic stay Meta-World's) and swaps in the shared scene, the authors' object ranges and hand
starts, and a 21-D observation holding both objects:

    hand xyz (3), gripper opening (1), drawer handle xyz (3), drawer quaternion (4),
    door handle xyz (3), door handle quaternion (4), goal xyz (3)  + task one-hot (4) = 25.

Both quaternions are MuJoCo's (w, x, y, z); the original mixed scipy's (x, y, z, w) for the door
with MuJoCo's order for the drawer). Rewards are the v3 shaped rewards of each base class (0-10),
computed with that class's own object position in the primary slot: the door handle
for the door tasks, the drawer handle for drawer-open, and the drawer handle raised 0.05 for
drawer-close, the position Meta-World's drawer-close target and threshold are built for (the
original used the unraised handle there, adding a constant ~0.05 to the success distance).

The hand's workspace is Meta-World's (x >= -0.5), as in the original: door-close's hand starts
at x = -0.6, outside it, and its first step clips the mocap target back inside.

Each task has 50 object positions drawn at construction (benchmark seed ``s`` for training,
``s + 100`` for evaluation) and cycles through them, one per episode, in a seeded random order.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import functools  # noqa: E402
from functools import cached_property  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import gymnasium as gym  # noqa: E402
import metaworld  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium.spaces import Box  # noqa: E402
from metaworld.envs.sawyer_door_close_v3 import SawyerDoorCloseEnvV3  # noqa: E402
from metaworld.envs.sawyer_door_v3 import SawyerDoorEnvV3  # noqa: E402
from metaworld.envs.sawyer_drawer_close_v3 import SawyerDrawerCloseEnvV3  # noqa: E402
from metaworld.envs.sawyer_drawer_open_v3 import SawyerDrawerOpenEnvV3  # noqa: E402

from environments.metaworld_mt import (  # noqa: E402
    HORIZON,
    METAWORLD_REWARD_PROBLEM,
    NUM_CONFIGS,
    RENDER_SIZE,
    CyclingSawyerTaskEnv,
    benchmark_seed,
)
from environments.multitask import MultiTaskEnv  # noqa: E402

SCENE_XML = Path(__file__).resolve().parent / "assets" / "door_drawer.xml"
_ASSETS_PLACEHOLDER = "@METAWORLD_ASSETS@"
RAW_OBS_DIM = 21
#: a camera that shows both the drawer and the door
CDS_RENDER_CAMERA = "corner2"

# observation layout
HAND, GRIPPER = slice(0, 3), 3
DRAWER_POS, DRAWER_QUAT = slice(4, 7), slice(7, 11)
DOOR_POS, DOOR_QUAT = slice(11, 14), slice(14, 18)
GOAL = slice(18, 21)

_DRAWER_HANDLE_OFFSET = np.array([0.0, -0.16, 0.0])


@functools.lru_cache(maxsize=1)
def scene_xml() -> str:
    """The scene XML with the installed Meta-World assets' absolute paths filled in."""
    assets = Path(metaworld.__file__).resolve().parent / "assets"
    return SCENE_XML.read_text().replace(_ASSETS_PLACEHOLDER, str(assets))


class _CDSScene:
    """The shared door+drawer scene for a Meta-World v3 task class (mixed in before it)."""

    #: object (door or drawer body) position range of the task's 50 configurations
    object_low: ClassVar[tuple[float, float, float]]
    object_high: ClassVar[tuple[float, float, float]]
    #: hand position the arm is driven to at reset
    hand_start: ClassVar[tuple[float, float, float]]

    # attributes of the Meta-World base class this is mixed into
    model: Any
    data: Any
    frame_skip: int
    _target_pos: np.ndarray

    def __init__(
        self,
        render_mode: str | None = None,
        camera_name: str | None = None,
        width: int = RENDER_SIZE,
        height: int = RENDER_SIZE,
    ) -> None:
        super().__init__(  # type: ignore[call-arg]
            render_mode=render_mode, camera_name=camera_name, width=width, height=height
        )
        self.hand_init_pos = np.array(self.hand_start, dtype=np.float64)
        self.init_config["hand_init_pos"] = self.hand_init_pos  # type: ignore[attr-defined]
        self._random_reset_space = Box(
            np.array(self.object_low), np.array(self.object_high), dtype=np.float64
        )
        self._freeze_rand_vec = True
        self._last_rand_vec = np.array(self.object_low, dtype=np.float64)
        self._set_task_called = True
        self._partially_observable = False
        self._hand_id = self.model.body("hand").id
        self._rclaw_id = self.model.body("rightclaw").id
        self._lclaw_id = self.model.body("leftclaw").id
        self._drawer_link_id = self.model.body("drawer_link").id
        self._door_handle_id = self.model.geom("handle").id

    # -------------------------------------------------------------------- model and spaces
    @property
    def model_name(self) -> str:
        return str(SCENE_XML)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = mujoco.MjModel.from_xml_string(scene_xml())
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)  # type: ignore
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)  # type: ignore
        return model, mujoco.MjData(model)

    @cached_property
    def sawyer_observation_space(self) -> Box:
        return Box(-np.inf, np.inf, (RAW_OBS_DIM,), dtype=np.float64)

    # -------------------------------------------------------------------- configuration
    def set_config(self, object_pos: np.ndarray) -> None:
        """Object (door or drawer) position for the next reset."""
        self._last_rand_vec = np.asarray(object_pos, dtype=np.float64).copy()

    # -------------------------------------------------------------------- observation
    def _get_obs(self) -> np.ndarray:
        data = self.data
        obs = np.empty(RAW_OBS_DIM, dtype=np.float64)
        obs[HAND] = data.xpos[self._hand_id]
        apart = np.linalg.norm(data.xpos[self._rclaw_id] - data.xpos[self._lclaw_id])
        obs[GRIPPER] = min(max(apart / 0.1, 0.0), 1.0)
        obs[DRAWER_POS] = data.xpos[self._drawer_link_id] + _DRAWER_HANDLE_OFFSET
        obs[DRAWER_QUAT] = data.xquat[self._drawer_link_id]
        obs[DOOR_POS] = data.geom_xpos[self._door_handle_id]
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, data.geom_xmat[self._door_handle_id])
        obs[DOOR_QUAT] = quat
        obs[GOAL] = self._target_pos
        return obs

    # -------------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to the configured object position (seed and options are unused)."""
        del seed, options
        self.curr_path_length = 0
        mujoco.mj_resetData(self.model, self.data)
        self.reset_model()  # type: ignore[attr-defined]
        # drawer-open moves the drawer body without a forward pass: refresh before observing
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.set_xyz_action(action[:3])  # type: ignore[attr-defined]
        self.do_simulation([action[-1], -action[-1]], n_frames=self.frame_skip)  # type: ignore
        self.curr_path_length += 1
        mujoco.mj_forward(self.model, self.data)
        obs = self._get_obs()
        reward, info = self.evaluate_state(obs, action)
        return obs, float(reward), False, False, info

    def evaluate_state(self, obs: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, Any]]:
        """The base class's reward and success on its own 7-D view (hand, gripper, its object)."""
        primary = np.empty(7, dtype=np.float64)
        primary[:4] = obs[:4]
        primary[4:7] = self._get_pos_objects()  # type: ignore[attr-defined]
        return super().evaluate_state(primary, action)  # type: ignore[misc]


_DOOR_LOW, _DOOR_HIGH = (-0.1, 0.85, 0.15), (0.0, 0.95, 0.15)
_DRAWER_LOW, _DRAWER_HIGH = (0.3, 0.9, 0.0), (0.4, 0.9, 0.0)


class CDSDoorOpenEnv(_CDSScene, SawyerDoorEnvV3):
    """Open the door: target = door + (-0.3, -0.45, 0); success |handle_x - target_x| <= 0.08."""

    object_low, object_high = _DOOR_LOW, _DOOR_HIGH
    hand_start = (0.0, 0.6, 0.2)


class CDSDoorCloseEnv(_CDSScene, SawyerDoorCloseEnvV3):
    """Close the door (starts open at -90 deg): target = door + (0.2, -0.2, 0); success within
    0.08 of the target."""

    object_low, object_high = _DOOR_LOW, _DOOR_HIGH
    hand_start = (-0.6, 0.6, 0.2)


class CDSDrawerOpenEnv(_CDSScene, SawyerDrawerOpenEnvV3):
    """Open the drawer: target = drawer + (0, -0.36, 0.09); success handle within 0.03."""

    object_low, object_high = _DRAWER_LOW, _DRAWER_HIGH
    hand_start = (0.0, 0.6, 0.2)


class CDSDrawerCloseEnv(_CDSScene, SawyerDrawerCloseEnvV3):
    """Close the drawer (starts pulled out 0.15): target = drawer + (0, -0.16, 0.09); success
    within TARGET_RADIUS + 0.015 = 0.065 of the raised handle (Meta-World v3's rule)."""

    object_low, object_high = _DRAWER_LOW, _DRAWER_HIGH
    hand_start = (0.0, 0.6, 0.2)


CDS_TASK_CLASSES: tuple[type[_CDSScene], ...] = (
    CDSDoorOpenEnv,
    CDSDoorCloseEnv,
    CDSDrawerOpenEnv,
    CDSDrawerCloseEnv,
)


def sample_configs(task: int, bench_seed: int, n: int = NUM_CONFIGS) -> np.ndarray:
    """`n` object positions of task `task`, drawn uniformly from its range (seeded)."""
    cls = CDS_TASK_CLASSES[task]
    rng = np.random.default_rng([bench_seed, task])
    return rng.uniform(np.array(cls.object_low), np.array(cls.object_high), size=(n, 3))


class CDSTaskEnv(CyclingSawyerTaskEnv):
    """One CDS task cycling through its object positions."""

    def __init__(
        self,
        task: int,
        configs: np.ndarray,
        seed: int | None = None,
        render_mode: str | None = None,
        camera_name: str | None = CDS_RENDER_CAMERA,
        width: int = RENDER_SIZE,
        height: int = RENDER_SIZE,
    ) -> None:
        self.configs = np.array(configs, dtype=np.float64)
        if self.configs.ndim != 2 or self.configs.shape[1] != 3 or len(self.configs) == 0:
            raise ValueError(f"configs must have shape (n, 3), got {self.configs.shape}")
        self.inner = CDS_TASK_CLASSES[task](
            render_mode=render_mode, camera_name=camera_name, width=width, height=height
        )
        super().__init__(
            task,
            len(CDS_TASK_CLASSES),
            raw_obs_dim=RAW_OBS_DIM,
            num_configs=len(self.configs),
            seed=seed,
            render_mode=render_mode,
            camera_name=camera_name,
        )

    def _apply_config(self, index: int) -> None:
        self.inner.set_config(self.configs[index])

    @property
    def goal(self) -> np.ndarray:
        return np.array(self.inner._target_pos, dtype=np.float64)


class MetaWorldCDSEnv(MultiTaskEnv):
    """The four CDS door/drawer tasks as one family."""

    eval_copies_limit: ClassVar[int] = 1  # slow to build; the policy call is not the cost
    exact_resume: ClassVar[bool] = False  # Meta-World keeps state environments.env_state misses

    task_names = ("door-open", "door-close", "drawer-open", "drawer-close")
    horizon = HORIZON
    min_reward = 0.0
    onehot_mode = "zero"
    reward_fn_problem = METAWORLD_REWARD_PROBLEM
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {}

    def make_task_env(
        self,
        task: int,
        *,
        seed: int | None,
        evaluation: bool,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> gym.Env:
        """Task `task` with 50 object positions from the family seed (train) or the family seed
        + 100 (evaluation). Options: camera_name, width, height."""
        unknown = set(task_kwargs) - {"camera_name", "width", "height"}
        if unknown:
            raise TypeError(f"MetaWorldCDSEnv got unknown task options {sorted(unknown)}")
        configs = sample_configs(task, benchmark_seed(task, seed, evaluation))
        return CDSTaskEnv(task, configs, seed=seed, render_mode=render_mode, **task_kwargs)
