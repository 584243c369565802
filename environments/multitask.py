"""The multi-task environment interface every benchmark of the project implements.

A multi-task benchmark is a family of N task environments behind one gymnasium id. Training code
never steps the family itself: it asks for the N task environments (`make_task_envs`), steps them
in lockstep and routes each task's data to that task's buffer. Observations end with (or contain) a
one-hot task vector so any method can read the task; `split_observation` gives the network input.

As a plain gymnasium env (what `gymnasium.make(ID)` returns) the family plays one task per episode,
cycling through the tasks, or the task given by `reset(options={"task": k})`. That keeps every id
usable with ordinary gymnasium tooling.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np


class MultiTaskEnv(gym.Env):
    """A family of N related task environments.

    Subclasses set the class attributes and implement `make_task_env`. Each task env is a plain
    gymnasium env with no time limit of its own (the sampler cuts episodes at `horizon`); its
    observation carries the one-hot at `onehot_start`, and its step info carries `success`.
    """

    #: one name a task, in task-id order
    task_names: ClassVar[tuple[str, ...]] = ()
    #: episode length cap (the registered max_episode_steps)
    horizon: ClassVar[int] = 0
    #: the reward that unsupervised data sharing (UDS) gives other tasks' transitions
    min_reward: ClassVar[float] = 0.0
    #: "slice" drops the one-hot from the network input, "zero" zeroes it in place
    onehot_mode: ClassVar[Literal["slice", "zero"]] = "slice"
    #: step-info keys reduced over an episode into evaluation metrics:
    #: key -> (metric name, "last" | "mean" | "max")
    episode_info_metrics: ClassVar[dict[str, tuple[str, str]]] = {}
    #: evaluation episodes of a task that may run side by side (each needs its own env instance;
    #: families that are slow to build or heavy in memory keep this at 1)
    eval_copies_limit: ClassVar[int] = 16
    #: whether environments.env_state restores this family's envs exactly mid-episode (checked by a
    #: test); otherwise a resumed run starts fresh episodes
    exact_resume: ClassVar[bool] = True
    #: family options the command line may pass (e.g. "sparse_tasks"), as keyword arguments
    task_options: ClassVar[tuple[str, ...]] = ()
    #: why `reward_fn` cannot give another task's reward of a stored transition (CDS,
    #: `--unsupervised False`, is refused with this reason); None where it can
    reward_fn_problem: ClassVar[str | None] = (
        "it offers no reward function of stored transitions (MultiTaskEnv.reward_fn)")
    #: floats per transition that `reward_fn` needs beyond (obs, action, next_obs): each task
    #: env's step puts them in `info["reward_info"]`, and the replay buffers keep them (CDS only)
    reward_info_dim: ClassVar[int] = 0

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(
        self, seed: int | None = None, render_mode: str | None = None, **task_kwargs: Any
    ) -> None:
        self._seed = seed
        #: applies to the env `gymnasium.make(ID, render_mode=...)` plays, not to make_task_envs
        self.render_mode = render_mode
        self._task_kwargs = task_kwargs
        self._play_env: gym.Env | None = None
        self._play_task = -1
        #: one task env per task played so far, kept so that revisits continue its random stream
        self._play_envs: dict[int, gym.Env] = {}
        probe = self.make_task_env(0, seed=seed, evaluation=False, **task_kwargs)
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        probe.close()

    # ----------------------------------------------------------------------------- subclass API
    def make_task_env(
        self,
        task: int,
        *,
        seed: int | None,
        evaluation: bool,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> gym.Env:
        """Build the environment of task `task` (a fresh instance each call).

        `render_mode="rgb_array"` must give upright frames rendered headless.
        """
        raise NotImplementedError

    def reward_fn(
        self, task: int, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
        reward_info: np.ndarray | None = None,
    ) -> np.ndarray:
        """Task `task`'s step reward of stored transitions (obs, action -> next_obs), for CDS.

        Arrays are laid out (..., dim) as the replay buffers hold them: `split_observation`'s
        output, with or without the one-hot, and `reward_info` (..., reward_info_dim) as the
        collecting env's step put it in `info["reward_info"]` (None for families without). It
        must equal what `task`'s env returns for that step, whichever task collected it (so the
        family's tasks must share their dynamics and the reward must depend on nothing outside
        what is stored); returns (...). Families that can set `reward_fn_problem = None`.
        """
        raise NotImplementedError(f"{type(self).__name__}: {self.reward_fn_problem}")

    # ----------------------------------------------------------------------------- family API
    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def obs_dim(self) -> int:
        return int(self.observation_space.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action_space.shape[0])

    @property
    def onehot_start(self) -> int:
        """Index of the first one-hot entry in an observation (default: the last N entries)."""
        return self.obs_dim - self.num_tasks

    def network_obs_dim(self, include_task_id: bool = False) -> int:
        if include_task_id or self.onehot_mode == "zero":
            return self.obs_dim
        return self.obs_dim - self.num_tasks

    def make_task_envs(
        self, *, evaluation: bool, seed: int | None = None, render_mode: str | None = None
    ) -> list[gym.Env]:
        """One fresh env per task. Train and evaluation instances are separate, seeded apart."""
        base = self._seed if seed is None else seed
        offset = 1000 if evaluation else 0
        return [
            self.make_task_env(
                k,
                seed=None if base is None else base + offset + k,
                evaluation=evaluation,
                render_mode=render_mode,
                **self._task_kwargs,
            )
            for k in range(self.num_tasks)
        ]

    def get_train_envs(self) -> list[gym.Env]:
        return self.make_task_envs(evaluation=False)

    def get_test_envs(self) -> list[gym.Env]:
        return self.make_task_envs(evaluation=True)

    def task_id(self, obs: np.ndarray) -> np.ndarray:
        """Task id of each observation (argmax of its one-hot); works on batches (..., obs_dim)."""
        start = self.onehot_start
        return np.argmax(obs[..., start : start + self.num_tasks], axis=-1)

    def split_observation(self, obs: np.ndarray, include_task_id: bool = False) -> np.ndarray:
        """Network input of observations (..., obs_dim): the one-hot sliced off or zeroed."""
        if include_task_id:
            return obs
        start, stop = self.onehot_start, self.onehot_start + self.num_tasks
        if self.onehot_mode == "slice":
            return np.concatenate([obs[..., :start], obs[..., stop:]], axis=-1)
        out = np.array(obs, copy=True)
        out[..., start:stop] = 0.0
        return out

    # ----------------------------------------------------------------------------- gym.Env API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            task = int(options["task"])
            if not 0 <= task < self.num_tasks:
                raise ValueError(f"task must be in [0, {self.num_tasks}), got {task}")
        else:
            task = (self._play_task + 1) % self.num_tasks
        if task not in self._play_envs:
            # built once per task: rebuilding it with the same seed on every visit replayed the
            # same episode start each time the cycle came back to the task
            task_seed = None if self._seed is None else self._seed + task
            self._play_envs[task] = self.make_task_env(
                task,
                seed=task_seed,
                evaluation=False,
                render_mode=self.render_mode,
                **self._task_kwargs,
            )
        self._play_env = self._play_envs[task]
        self._play_task = task
        sub_seed = None if seed is None else seed + task
        return self._play_env.reset(seed=sub_seed)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._play_env is None:
            raise RuntimeError("call reset() before step()")
        return self._play_env.step(action)

    def render(self) -> Any:
        return None if self._play_env is None else self._play_env.render()

    def close(self) -> None:
        for env in self._play_envs.values():
            env.close()
        self._play_envs = {}
        self._play_env = None
        self._play_task = -1
