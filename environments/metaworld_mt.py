"""MetaWorldMT10-v2 / MetaWorldMT50-v2: the Meta-World multi-task benchmarks as task families.

metaworld 3.1.1 only ships the ``-v3`` tasks (same task set and order as v2; MuJoCo 3 changed the
mocap weld, so the physics is not byte-identical to the mujoco-py v2 benchmark).

Each task env wraps one Meta-World task class and owns that task's 50 goal/object configurations
from the benchmark (``metaworld.MT10(seed=s)`` / ``metaworld.MT50(seed=s)``; the evaluation envs use
the benchmark of seed ``s + 100``). Every episode uses the next configuration of a seeded random
permutation, reshuffled after a full pass. The observation is the 39-D Meta-World observation
(goal visible) followed by the task one-hot; the networks see it with the one-hot zeroed.

Rendering (`render_mode="rgb_array"`): 240x240 frames from Meta-World's "corner2" camera by
default. Meta-World's corner cameras are mounted rolled by 180 degrees, so their frames are
rotated back (a vertical flip alone would mirror them); pass `camera_name=None` for MuJoCo's free
camera.

Construction cost: building a Meta-World benchmark resets every task env 50 times, and each reset
simulates 250 physics steps to move the hand, which only positions the arm and never changes the
sampled configurations. The benchmarks are therefore built with that hand simulation replaced by
a kinematic update (checked to give identical configurations) and cached per process, so the
probe, the train envs and a second family with the same seed share one build.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import contextlib  # noqa: E402
import functools  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import gymnasium as gym  # noqa: E402
import metaworld  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT10_V3, MT50_V3  # noqa: E402
from metaworld.sawyer_xyz_env import SawyerXYZEnv  # noqa: E402
from metaworld.types import Task  # noqa: E402

from environments.multitask import MultiTaskEnv  # noqa: E402

HORIZON = 500
NUM_CONFIGS = 50
#: the evaluation benchmark's seed is the training benchmark's seed plus this
EVAL_BENCHMARK_OFFSET = 100
#: `MultiTaskEnv.make_task_envs` adds this to the family seed for evaluation envs
_FAMILY_EVAL_OFFSET = 1000
#: default rendering: Meta-World's "corner2" camera (the whole table), small frames
RENDER_CAMERA = "corner2"
RENDER_SIZE = 240
#: why Meta-World families refuse CDS (`--unsupervised False`)
METAWORLD_REWARD_PROBLEM = (
    "Meta-World's shaped rewards read per-episode start positions (hand_init_pos, init_tcp, "
    "obj_init_pos) and simulator state (the tool centre, the door joint) that no observation "
    "holds")
#: a large step budget for the wrapped Meta-World env: it raises after `max_path_length` steps and
#: flags truncation at it; episode length is the sampler's business here, not the inner env's
_NO_INNER_LIMIT = 2**62

MT10_ENV_NAMES: tuple[str, ...] = tuple(MT10_V3)
MT50_ENV_NAMES: tuple[str, ...] = tuple(MT50_V3)

_UNSEEDED_BASE: int | None = None


def benchmark_seed(task: int, seed: int | None, evaluation: bool) -> int:
    """Benchmark seed behind a task env seed handed out by `MultiTaskEnv.make_task_envs`.

    That method gives task k the seed ``s + k`` (train) or ``s + 1000 + k`` (evaluation) for family
    seed ``s``; the configurations must come from the benchmark of seed ``s`` (train) or ``s + 100``
    (evaluation), shared by all tasks. An unseeded family draws one base seed per process.
    """
    global _UNSEEDED_BASE
    if seed is None:
        if _UNSEEDED_BASE is None:
            _UNSEEDED_BASE = int(np.random.SeedSequence().entropy % 2**31)
        base = _UNSEEDED_BASE
    else:
        base = seed - task - (_FAMILY_EVAL_OFFSET if evaluation else 0)
    return base + (EVAL_BENCHMARK_OFFSET if evaluation else 0)


class ConfigCycle:
    """Seeded cycling over `n` configurations: a random permutation per pass, one per episode."""

    def __init__(self, n: int, seed: int | None) -> None:
        self.n = n
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart with a fresh generator (a new first permutation)."""
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(self.n)
        self._pos = 0

    def next(self) -> int:
        if self._pos == self.n:
            self._order = self._rng.permutation(self.n)
            self._pos = 0
        index = int(self._order[self._pos])
        self._pos += 1
        return index


# ------------------------------------------------------------------------------ benchmark building
_PATCH_LOCK = threading.Lock()


def _kinematic_hand_reset(self: SawyerXYZEnv, steps: int = 50) -> None:
    """Stand-in for `SawyerXYZEnv._reset_hand` while sampling configurations: place the mocap and
    update kinematics without simulating (the configurations never depend on the arm pose)."""
    del steps
    mocap_id = self.model.body_mocapid[self.data.body("mocap").id]
    self.data.mocap_pos[mocap_id][:] = self.hand_init_pos
    self.data.mocap_quat[mocap_id][:] = np.array([1.0, 0.0, 1.0, 0.0])
    mujoco.mj_forward(self.model, self.data)
    self.init_tcp = self.tcp_center


@contextlib.contextmanager
def fast_config_sampling() -> Iterator[None]:
    """Build Meta-World benchmarks without the 250-step hand simulation of every sampling reset."""
    with _PATCH_LOCK:
        original = SawyerXYZEnv._reset_hand
        SawyerXYZEnv._reset_hand = _kinematic_hand_reset  # type: ignore[method-assign]
        try:
            yield
        finally:
            SawyerXYZEnv._reset_hand = original  # type: ignore[method-assign]


def _group_by_env(tasks: Sequence[Task]) -> dict[str, tuple[Task, ...]]:
    grouped: dict[str, list[Task]] = {}
    for task in tasks:
        grouped.setdefault(task.env_name, []).append(task)
    return {name: tuple(items) for name, items in grouped.items()}


@functools.lru_cache(maxsize=8)
def benchmark_tasks(benchmark: str, seed: int, fast: bool = True) -> dict[str, tuple[Task, ...]]:
    """The 50 configurations of every task of ``metaworld.<benchmark>(seed=seed)`` (cached).

    `fast=False` builds the benchmark exactly as Meta-World does (slow; for checking the fast path).
    """
    cls = {"MT10": metaworld.MT10, "MT50": metaworld.MT50}[benchmark]
    context = fast_config_sampling() if fast else contextlib.nullcontext()
    with context:
        bench = cls(seed=seed)
    return _group_by_env(bench.train_tasks)


@functools.lru_cache(maxsize=16)
def single_task_configs(env_name: str, seed: int) -> tuple[Task, ...]:
    """50 configurations of one task from ``metaworld.MT1(env_name, seed=seed)`` (goal visible).

    For building one task env without its whole benchmark (tests, demos). These are not the
    configurations the same task gets inside MT10/MT50, whose sampling is chained across tasks.
    """
    with fast_config_sampling():
        bench = metaworld.MT1(env_name, seed=seed)
    return tuple(bench.train_tasks)


# ------------------------------------------------------------------------------ task envs
class CyclingSawyerTaskEnv(gym.Env):
    """One task of a Sawyer family: config cycling, one-hot, float32, no time limit of its own.

    Subclasses provide the wrapped raw env (`self.inner`, a Meta-World style env whose `reset()`
    and `step()` return raw observations) and `_apply_config`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 80}

    inner: Any

    def __init__(
        self,
        task: int,
        num_tasks: int,
        raw_obs_dim: int,
        num_configs: int,
        seed: int | None,
        render_mode: str | None,
        camera_name: str | None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.num_tasks = num_tasks
        self.render_mode = render_mode
        self._camera_id: int | None = None
        if camera_name is not None:
            self._camera_id = mujoco.mj_name2id(
                self.inner.model, mujoco.mjtObj.mjOBJ_CAMERA, camera_name
            )
            if self._camera_id < 0:
                raise ValueError(f"no camera named {camera_name!r} in the model")
        self._raw_dim = raw_obs_dim
        self._onehot = np.zeros(num_tasks, dtype=np.float32)
        self._onehot[task] = 1.0
        dim = raw_obs_dim + num_tasks
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._cycle = ConfigCycle(num_configs, seed)
        self.config_index = -1
        if seed is not None:
            self.action_space.seed(seed)

    def _apply_config(self, index: int) -> None:
        raise NotImplementedError

    def _obs(self, raw: np.ndarray) -> np.ndarray:
        out = np.empty(self._raw_dim + self.num_tasks, dtype=np.float32)
        out[: self._raw_dim] = raw
        out[self._raw_dim :] = self._onehot
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Next configuration of the cycle (or `options={"config": i}`), then the inner reset.

        A seed restarts the cycle with that seed (the inner Meta-World env has no randomness of
        its own once its configuration is fixed).
        """
        super().reset(seed=seed)
        if seed is not None:
            self._cycle.reseed(seed)
        if options and "config" in options:
            index = int(options["config"])
            if not 0 <= index < self._cycle.n:
                raise ValueError(f"config must be in [0, {self._cycle.n}), got {index}")
        else:
            index = self._cycle.next()
        self._apply_config(index)
        self.config_index = index
        raw, _ = self.inner.reset()
        return self._obs(raw), {"task_id": self.task, "config": index}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        raw, reward, _, _, info = self.inner.step(action)
        info["success"] = bool(info["success"])
        info["task_id"] = self.task
        # no genuine termination in Meta-World; time-outs belong to the sampler
        return self._obs(raw), float(reward), False, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        frame = self.inner.render()
        # Meta-World's corner cameras are mounted rolled by 180 degrees (image-up pointing at the
        # floor; written for mujoco-py's bottom-up frames): rotate those frames back. A vertical
        # flip alone would leave them mirrored.
        if self._camera_id is not None and self.inner.data.cam_xmat[self._camera_id][7] < 0.0:
            frame = np.ascontiguousarray(frame[::-1, ::-1])
        return frame

    def close(self) -> None:
        self.inner.close()


class MetaWorldTaskEnv(CyclingSawyerTaskEnv):
    """One Meta-World task cycling through its configurations (`Task` objects of a benchmark)."""

    def __init__(
        self,
        env_name: str,
        configs: Sequence[Task],
        task: int,
        num_tasks: int,
        seed: int | None = None,
        render_mode: str | None = None,
        camera_name: str | None = RENDER_CAMERA,
        width: int = RENDER_SIZE,
        height: int = RENDER_SIZE,
    ) -> None:
        if not configs or any(c.env_name != env_name for c in configs):
            raise ValueError(f"need a non-empty list of {env_name} configurations")
        self.env_name = env_name
        self.configs = tuple(configs)
        self.inner = ALL_V3_ENVIRONMENTS[env_name](
            render_mode=render_mode, camera_name=camera_name, width=width, height=height
        )
        self.inner.max_path_length = _NO_INNER_LIMIT
        if seed is not None:
            self.inner.seed(seed)
        super().__init__(
            task,
            num_tasks,
            raw_obs_dim=39,
            num_configs=len(self.configs),
            seed=seed,
            render_mode=render_mode,
            camera_name=camera_name,
        )
        self.inner.set_task(self.configs[0])
        self._applied = 0

    def _apply_config(self, index: int) -> None:
        if index != self._applied:
            self.inner.set_task(self.configs[index])
            self._applied = index

    @property
    def goal(self) -> np.ndarray:
        """The current episode's goal position (also the last 3 raw observation entries)."""
        return np.array(self.inner._target_pos, dtype=np.float64)


class _MetaWorldMTEnv(MultiTaskEnv):
    """A Meta-World MT benchmark as a task family (one task env per task type)."""

    eval_copies_limit: ClassVar[int] = 1  # slow to build; the policy call is not the cost
    exact_resume: ClassVar[bool] = False  # Meta-World keeps state environments.env_state misses

    benchmark: ClassVar[str] = ""
    env_names: ClassVar[tuple[str, ...]] = ()

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
        """Task `task` with its configurations from the (cached) benchmark of the family seed
        (train) or of the family seed + 100 (evaluation). Options: camera_name, width, height."""
        unknown = set(task_kwargs) - {"camera_name", "width", "height"}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown task options {sorted(unknown)}")
        env_name = self.env_names[task]
        configs = benchmark_tasks(self.benchmark, benchmark_seed(task, seed, evaluation))[env_name]
        return MetaWorldTaskEnv(
            env_name,
            configs,
            task,
            len(self.env_names),
            seed=seed,
            render_mode=render_mode,
            **task_kwargs,
        )


class MetaWorldMT10Env(_MetaWorldMTEnv):
    """MT10: reach, push, pick-place, door-open, drawer-open, drawer-close, button-press-topdown,
    peg-insert-side, window-open, window-close (Meta-World v3 classes)."""

    benchmark = "MT10"
    env_names = MT10_ENV_NAMES
    task_names = tuple(name.removesuffix("-v3") for name in MT10_ENV_NAMES)


class MetaWorldMT50Env(_MetaWorldMTEnv):
    """MT50: all 50 Meta-World v3 tasks in Meta-World's MT50 order."""

    benchmark = "MT50"
    env_names = MT50_ENV_NAMES
    task_names = tuple(name.removesuffix("-v3") for name in MT50_ENV_NAMES)
