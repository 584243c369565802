"""Collecting experience: N task environments (or K copies of them) stepped in lockstep, one batched
policy call a step.

`TaskVectorEnv` steps one environment per task and resets an episode when it terminates or reaches
the horizon (a truncation, never stored as terminal). `EpisodeTracker` turns steps into finished
episodes with their metrics. `Collector` fills the replay buffer for a round (every task gets the
same number of steps; an episode may continue into the next round). Evaluation lives in
`learning.evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from learning.behaviour import Behaviour
from learning.env_state import load_env, save_env
from learning.replay_buffer import MultiTaskReplayBuffer

#: maps raw observations (..., obs_dim) to network inputs
ObsSplit = Callable[[np.ndarray], np.ndarray]


@dataclass
class StepResult:
    next_obs: np.ndarray  # (N, d) the observation each action led to (before any reset)
    rewards: np.ndarray  # (N,)
    terminated: np.ndarray  # (N,) genuine terminations
    ended: np.ndarray  # (N,) terminated or reached the horizon
    infos: list[dict[str, Any]]


class TaskVectorEnv:
    """One env per task, stepped together, with automatic resets."""

    def __init__(self, envs: Sequence[gym.Env], horizon: int, seed: int) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.horizon = horizon
        first = [env.reset(seed=seed + k)[0] for k, env in enumerate(self.envs)]
        self.obs = np.stack(first).astype(np.float32)
        self.steps_in_episode = np.zeros(self.num_envs, dtype=np.int64)

    def reset_all(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start a new episode everywhere (reseeding each env when `seeds` is given)."""
        firsts = [env.reset(seed=None if seeds is None else int(seeds[k]))[0]
                  for k, env in enumerate(self.envs)]
        self.obs = np.stack(firsts).astype(np.float32)
        self.steps_in_episode[:] = 0
        return self.obs

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> StepResult:
        """Step every (active) env; envs that end an episode are reset at once."""
        n = self.num_envs
        next_obs = self.obs.copy()  # rows of inactive envs keep their observation
        rewards = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=bool)
        ended = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{}] * n
        resets: dict[int, np.ndarray] = {}
        for k, env in enumerate(self.envs):
            if active is not None and not active[k]:
                continue
            obs, reward, term, trunc, info = env.step(actions[k])
            next_obs[k] = obs
            rewards[k] = reward
            terminated[k] = term
            infos[k] = info
            self.steps_in_episode[k] += 1
            if term or trunc or self.steps_in_episode[k] >= self.horizon:
                ended[k] = True
                resets[k] = env.reset()[0]
                self.steps_in_episode[k] = 0
        # a new array every step, never written in place: callers may hold the previous one (an
        # identity observation split hands it to the buffer as the stored observation)
        self.obs = next_obs
        if resets:
            self.obs = next_obs.copy()
            for k, first in resets.items():
                self.obs[k] = first
        return StepResult(next_obs, rewards, terminated, ended, infos)

    def close(self) -> None:
        for env in self.envs:
            env.close()


@dataclass
class Episode:
    task: int
    ret: float
    discounted_return: float
    length: int
    terminated: bool
    success: bool
    extras: dict[str, float] = field(default_factory=dict)


class EpisodeTracker:
    """Accumulates the running episode of every env row and emits finished ones.

    `info_metrics` maps a step-info key to (metric name, reduction) with reduction "last", "mean"
    or "max" over the episode's steps. `tasks` gives each row's task (default: row i is task i).
    """

    def __init__(
        self,
        num_rows: int,
        discount: float,
        info_metrics: dict[str, tuple[str, str]],
        tasks: np.ndarray | None = None,
    ) -> None:
        self.num_rows = num_rows
        self.tasks = np.arange(num_rows) if tasks is None else tasks
        self.discount = discount
        self.info_metrics = info_metrics
        self.finished: list[Episode] = []
        self._ret = np.zeros(num_rows)
        self._disc_ret = np.zeros(num_rows)
        self._len = np.zeros(num_rows, dtype=np.int64)
        self._success = np.zeros(num_rows, dtype=bool)
        self._extras: list[dict[str, list[float]]] = [{} for _ in range(num_rows)]

    def record(self, step: StepResult, active: np.ndarray | None = None) -> np.ndarray:
        """Add one lockstep step; returns the per-task success flags of this step."""
        rows = range(self.num_rows) if active is None else np.flatnonzero(active)
        success = np.zeros(self.num_rows, dtype=bool)
        for k in rows:
            info = step.infos[k]
            success[k] = bool(info.get("success", False))
            for key in self.info_metrics:
                if key in info:
                    self._extras[k].setdefault(key, []).append(float(info[key]))
        mask = np.ones(self.num_rows, bool) if active is None else active
        self._disc_ret += mask * (self.discount ** self._len) * step.rewards
        self._ret += mask * step.rewards
        self._len += mask
        self._success |= success
        for k in np.flatnonzero(step.ended):
            self.finished.append(self._close(int(k), bool(step.terminated[k])))
        return success

    def _close(self, k: int, terminated: bool) -> Episode:
        extras = {}
        for key, values in self._extras[k].items():
            name, how = self.info_metrics[key]
            extras[name] = {"last": values[-1], "mean": float(np.mean(values)),
                            "max": float(np.max(values))}[how]
        episode = Episode(int(self.tasks[k]), float(self._ret[k]), float(self._disc_ret[k]),
                          int(self._len[k]), terminated, bool(self._success[k]), extras)
        self._ret[k] = self._disc_ret[k] = 0.0
        self._len[k] = 0
        self._success[k] = False
        self._extras[k] = {}
        return episode

    def state_dict(self) -> dict[str, object]:
        return {"ret": self._ret.copy(), "disc_ret": self._disc_ret.copy(),
                "len": self._len.copy(), "success": self._success.copy(),
                "extras": [dict(x) for x in self._extras], "finished": list(self.finished)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._ret[:] = state["ret"]
        self._disc_ret[:] = state["disc_ret"]
        self._len[:] = state["len"]
        self._success[:] = state["success"]
        self._extras = [dict(x) for x in state["extras"]]  # type: ignore[attr-defined]
        self.finished = list(state["finished"])  # type: ignore[call-overload]

    def pop_finished(self) -> list[Episode]:
        done, self.finished = self.finished, []
        return done


class Collector:
    """Fills the replay buffer with the behaviour policy, `steps_per_task` steps of every task a
    call.

    The vector env holds K copies of the task set, copy-major (row c * N + i is copy c of task
    i). One behaviour call acts for all K * N envs; a round's steps per task are split over the
    copies (the last lockstep step of a round steps only the copies still owed a step)."""

    def __init__(
        self,
        venv: TaskVectorEnv,
        behaviour: Behaviour,
        buffer: MultiTaskReplayBuffer,
        split: ObsSplit,
        *,
        discount: float,
        info_metrics: dict[str, tuple[str, str]],
    ) -> None:
        n = buffer.num_tasks
        if venv.num_envs % n:
            raise ValueError("collection envs must be whole copies of the task set")
        self.venv = venv
        self.behaviour = behaviour
        self.buffer = buffer
        self.split = split
        self.num_tasks = n
        self.copies = venv.num_envs // n
        self._row_task = np.tile(np.arange(n), self.copies)
        self.tracker = EpisodeTracker(venv.num_envs, discount, info_metrics, self._row_task)
        #: mixture_counts[i, j]: steps of task i acted by policy j since the last reset_counts()
        self.mixture_counts = np.zeros((n, n), dtype=np.int64)
        self.total_env_steps = 0

    def collect(self, steps_per_task: int) -> None:
        full, rest = divmod(steps_per_task, self.copies)
        obs_net = self.split(self.venv.obs)
        for _ in range(full):
            obs_net = self._step(obs_net, self.copies)
        if rest:
            obs_net = self._step(obs_net, rest)
        self.total_env_steps += steps_per_task * self.num_tasks

    def _step(self, obs_net: np.ndarray, active_copies: int) -> np.ndarray:
        """One lockstep step of the first `active_copies` copies; returns the next network
        inputs of every env."""
        venv, n, k = self.venv, self.num_tasks, self.copies
        steps = venv.steps_in_episode.reshape(k, n)  # a view: the Q-switch's re-selection clock
        obs = torch.from_numpy(obs_net).reshape(k, n, -1)
        actions, acting = self.behaviour.act(obs, steps, False)
        m = active_copies
        active = None if m == k else np.arange(k * n) < m * n
        step = venv.step(actions.reshape(k * n, -1), active)
        next_net = self.split(step.next_obs)
        rows = m * n
        self.buffer.add(obs_net[:rows].reshape(m, n, -1), actions[:m],
                        step.rewards[:rows].reshape(m, n), next_net[:rows].reshape(m, n, -1),
                        step.terminated[:rows].reshape(m, n), acting[:m])
        self.tracker.record(step, active)
        pairs = self._row_task[:rows] * n + acting[:m].reshape(-1)
        self.mixture_counts += np.bincount(pairs, minlength=n * n).reshape(n, n)
        return self.split(venv.obs) if step.ended.any() else next_net

    def state_dict(self, exact_envs: bool) -> dict[str, object]:
        """Everything collection needs to continue exactly: env states (when the family can be
        restored exactly), current observations, episode accumulators, counters."""
        venv = self.venv
        behaviour_state = getattr(self.behaviour, "state_dict", lambda: None)()
        return {
            "envs": [save_env(env) for env in venv.envs] if exact_envs else None,
            "obs": venv.obs.copy(),
            "steps_in_episode": venv.steps_in_episode.copy(),
            "tracker": self.tracker.state_dict(),
            "mixture_counts": self.mixture_counts.copy(),
            "total_env_steps": self.total_env_steps,
            "behaviour": behaviour_state,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        venv = self.venv
        self.total_env_steps = int(state["total_env_steps"])  # type: ignore[arg-type]
        if state["envs"] is None:  # not restorable exactly: start fresh episodes
            venv.reset_all()
            return
        venv.envs = [load_env(blob, fresh)
                     for blob, fresh in zip(state["envs"], venv.envs, strict=True)]  # type: ignore[arg-type]
        venv.obs[:] = state["obs"]
        venv.steps_in_episode[:] = state["steps_in_episode"]
        self.tracker.load_state_dict(state["tracker"])  # type: ignore[arg-type]
        self.mixture_counts[:] = state["mixture_counts"]
        if state["behaviour"] is not None:
            self.behaviour.load_state_dict(state["behaviour"])  # type: ignore[attr-defined]

    def reset_counts(self) -> np.ndarray:
        counts, self.mixture_counts = self.mixture_counts, np.zeros_like(self.mixture_counts)
        return counts
