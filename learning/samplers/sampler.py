"""Collecting experience: N task environments (or K copies of them) stepped in lockstep, one batched
policy call a step.

`TaskVectorEnv` steps one environment per task and resets an episode when it terminates or reaches
the horizon (a truncation, never stored as terminal). `EpisodeTracker` turns steps into finished
episodes with their metrics. `Collector` fills the replay buffers for a round with whole episodes,
allocated to the tasks as the original's sequential samplers did. Evaluation lives in
`learning.runs.evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from environments.env_state import load_env, save_env
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.policies.behaviour import Behaviour

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
        #: called before every step (the trainer checks for a stop signal there)
        self.before_step: Callable[[], None] | None = None

    def reset_all(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start a new episode everywhere (reseeding each env when `seeds` is given)."""
        firsts = [env.reset(seed=None if seeds is None else int(seeds[k]))[0]
                  for k, env in enumerate(self.envs)]
        self.obs = np.stack(firsts).astype(np.float32)
        self.steps_in_episode[:] = 0
        return self.obs

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> StepResult:
        """Step every (active) env; envs that end an episode are reset at once."""
        if self.before_step is not None:
            self.before_step()
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
        self.discard(k)
        return episode

    def discard(self, k: int) -> None:
        """Forget row k's running episode (it will not be stored)."""
        self._ret[k] = self._disc_ret[k] = 0.0
        self._len[k] = 0
        self._success[k] = False
        self._extras[k] = {}

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


#: how a round's env steps are allocated to the tasks (see `Collector`)
SamplerType = Literal["local", "mt_local"]
SAMPLER_TYPES: tuple[str, ...] = ("local", "mt_local")


class _EpisodeStage:
    """The transitions of the current pass, one row per env, held until the pass decides which
    episodes the sequential sampler would have run (only those are stored)."""

    def __init__(self, rows: int, horizon: int, obs_dim: int, action_dim: int,
                 reward_info_dim: int) -> None:
        self.obs = np.zeros((rows, horizon, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((rows, horizon, obs_dim), dtype=np.float32)
        self.actions = np.zeros((rows, horizon, action_dim), dtype=np.float32)
        self.rewards = np.zeros((rows, horizon), dtype=np.float32)
        self.terminals = np.zeros((rows, horizon), dtype=np.float32)
        self.acting = np.zeros((rows, horizon), dtype=np.int64)
        #: the step infos' "reward_info" (CDS), None when the buffer keeps none
        self.reward_info = (np.zeros((rows, horizon, reward_info_dim), dtype=np.float32)
                            if reward_info_dim else None)

    def write(self, t: int, obs: np.ndarray, actions: np.ndarray, step: StepResult,
              next_obs: np.ndarray, acting: np.ndarray) -> None:
        """Step t of every row (rows that did not step are overwritten later or never read)."""
        self.obs[:, t] = obs
        self.actions[:, t] = actions
        self.rewards[:, t] = step.rewards
        self.next_obs[:, t] = next_obs
        self.terminals[:, t] = step.terminated
        self.acting[:, t] = acting
        if self.reward_info is not None:
            for row, info in enumerate(step.infos):
                if info:  # rows that did not step have no info
                    self.reward_info[row, t] = info["reward_info"]


class Collector:
    """Fills the replay buffer with the behaviour policy, one round of `num_steps` env steps a
    call, allocated to the tasks as the original's samplers did (`sampler_type`):

    * `local` (garage's LocalSampler, the original's default): one whole episode of each task in
      task order, cycling from task 0, until the round holds `num_steps` steps. Tasks with long
      episodes get more data; when `num_steps / N` exceeds the horizon the low-index tasks get an
      extra episode.
    * `mt_local` (the original's MTLocalSampler): every task runs whole episodes until it has at
      least `num_steps / N` steps.

    Every episode starts from a reset, and nothing carries over between rounds. The tasks still
    step in lockstep, one behaviour call a step: a round is a series of passes in which every env
    row runs one episode at most; a row whose episode has ended waits for the pass to end. A row
    is stopped (and its steps dropped) as soon as the rows before it in the sequential order
    already complete the round, so the stored episodes, and hence the per-task allocation, are
    exactly the sequential sampler's for any sequence of episode lengths.

    The vector env holds K copies of the task set, copy-major (row c * N + i is copy c of task
    i). With K copies a pass runs K episodes of every task, in the sequential order "copy 0 of
    tasks 0..N-1, copy 1 of tasks 0..N-1, ...", which is `local`'s cycle order: K copies run K of
    its cycles side by side. Under `mt_local` copy c runs each task's c-th episode of the pass."""

    def __init__(
        self,
        venv: TaskVectorEnv,
        behaviour: Behaviour,
        buffer: MultiTaskReplayBuffer,
        split: ObsSplit,
        *,
        discount: float,
        info_metrics: dict[str, tuple[str, str]],
        sampler_type: SamplerType = "local",
    ) -> None:
        n = buffer.num_tasks
        if venv.num_envs % n:
            raise ValueError("collection envs must be whole copies of the task set")
        if sampler_type not in SAMPLER_TYPES:
            raise ValueError(f"unknown sampler type {sampler_type!r}")
        self.venv = venv
        self.behaviour = behaviour
        self.buffer = buffer
        self.split = split
        self.sampler_type = sampler_type
        self.num_tasks = n
        self.copies = venv.num_envs // n
        self._row_task = np.tile(np.arange(n), self.copies)
        self.tracker = EpisodeTracker(venv.num_envs, discount, info_metrics, self._row_task)
        #: mixture_counts[i, j]: stored steps of task i acted by policy j since reset_counts()
        self.mixture_counts = np.zeros((n, n), dtype=np.int64)
        self.total_env_steps = 0
        #: stored episodes not yet read out (pop_episodes)
        self.episodes: list[Episode] = []
        self._stage: _EpisodeStage | None = None
        #: (task, transition arrays, reward info, episode) of the round's kept episodes, stored
        #: at its end
        self._kept: list[tuple[int, tuple[np.ndarray, ...], np.ndarray | None, Episode]] = []

    def collect(self, num_steps: int) -> np.ndarray:
        """One round of at least `num_steps` env steps in all; returns the steps stored per task."""
        samples = np.zeros(self.num_tasks, dtype=np.int64)
        self._start_fresh_episodes()
        while not self._round_complete(samples, num_steps):
            self._pass(samples, num_steps)
        self._store_round()
        self.total_env_steps += int(samples.sum())
        return samples

    def _round_complete(self, samples: np.ndarray, num_steps: int) -> bool:
        if self.sampler_type == "local":
            return int(samples.sum()) >= num_steps
        return bool((samples * self.num_tasks >= num_steps).all())

    def _dropped(self, lengths: np.ndarray, samples: np.ndarray, num_steps: int) -> np.ndarray:
        """Rows whose episode the sequential sampler would not start: the episodes before them
        in its order (their steps so far are a lower bound) already complete the round."""
        if self.sampler_type == "local":
            before = int(samples.sum()) + np.cumsum(lengths) - lengths
            return before >= num_steps
        per_copy = lengths.reshape(self.copies, self.num_tasks)
        before = samples + np.cumsum(per_copy, axis=0) - per_copy  # (K, N)
        return (before * self.num_tasks >= num_steps).reshape(-1)

    def _start_fresh_episodes(self) -> None:
        """Reset the rows left mid-episode (dropped at the end of the last round)."""
        venv = self.venv
        rows = np.flatnonzero(venv.steps_in_episode > 0)
        if len(rows):
            venv.obs = venv.obs.copy()  # a new array: callers may hold the previous one
        for k in rows:
            venv.obs[k] = venv.envs[k].reset()[0]
            venv.steps_in_episode[k] = 0
            self.tracker.discard(int(k))

    def _pass(self, samples: np.ndarray, num_steps: int) -> None:
        """Every row runs one episode (or is dropped); the kept episodes are set aside."""
        venv, n, k = self.venv, self.num_tasks, self.copies
        rows = k * n
        lengths = np.zeros(rows, dtype=np.int64)
        running = np.ones(rows, dtype=bool)
        finished: dict[int, Episode] = {}
        obs_net = self.split(venv.obs)
        t = 0
        while True:
            dropped = self._dropped(lengths, samples, num_steps)
            active = running & ~dropped
            if not active.any():
                break
            steps = venv.steps_in_episode.reshape(k, n)  # a view: the Q-switch's clock
            actions, acting = self.behaviour.act(torch.from_numpy(obs_net).reshape(k, n, -1),
                                                 steps, False)
            actions = actions.reshape(rows, -1)
            step = venv.step(actions, None if active.all() else active)
            next_net = self.split(step.next_obs)
            if self._stage is None:
                info = self.buffer.reward_info
                self._stage = _EpisodeStage(rows, venv.horizon, obs_net.shape[-1],
                                            actions.shape[-1],
                                            0 if info is None else info.shape[-1])
            self._stage.write(t, obs_net, actions, step, next_net, acting.reshape(-1))
            lengths += active
            self.tracker.record(step, active)
            for row, episode in zip(np.flatnonzero(step.ended), self.tracker.pop_finished(),
                                    strict=True):
                finished[int(row)] = episode
            running &= ~step.ended
            obs_net = self.split(venv.obs) if step.ended.any() else next_net
            t += 1
        self._keep(np.flatnonzero(~dropped), lengths, samples, finished)
        for row in np.flatnonzero(dropped):
            self.tracker.discard(int(row))

    def _keep(self, rows: np.ndarray, lengths: np.ndarray, samples: np.ndarray,
              finished: dict[int, Episode]) -> None:
        """Set aside the kept rows' episodes (copies) for the end of the round."""
        stage = self._stage
        assert stage is not None
        for row in rows.tolist():
            task, length = int(self._row_task[row]), int(lengths[row])
            if length == 0:
                continue
            arrays = tuple(x[row, :length].copy() for x in
                           (stage.obs, stage.actions, stage.rewards, stage.next_obs,
                            stage.terminals, stage.acting))
            info = None if stage.reward_info is None else stage.reward_info[row, :length].copy()
            self._kept.append((task, arrays, info, finished[row]))
            samples[task] += length

    def _store_round(self) -> None:
        """Store the round's episodes in the sequential sampler's order: `local` runs them in
        pass order already; `mt_local` runs all of task 0's, then task 1's, ..."""
        kept, self._kept = self._kept, []
        if self.sampler_type == "mt_local":
            kept.sort(key=lambda item: item[0])  # stable: each task's episodes stay in order
        n = self.num_tasks
        for task, arrays, info, episode in kept:
            self.buffer.add(task, *arrays, reward_info=info)
            self.mixture_counts[task] += np.bincount(arrays[-1], minlength=n)
            self.episodes.append(episode)

    def pop_episodes(self) -> list[Episode]:
        """The stored episodes finished since the last call, in the sequential order."""
        done, self.episodes = self.episodes, []
        return done

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
            "episodes": list(self.episodes),
            "mixture_counts": self.mixture_counts.copy(),
            "total_env_steps": self.total_env_steps,
            "behaviour": behaviour_state,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        venv = self.venv
        self.total_env_steps = int(state["total_env_steps"])  # type: ignore[arg-type]
        self.episodes = list(state["episodes"])  # type: ignore[call-overload]
        self.mixture_counts[:] = state["mixture_counts"]
        if state["envs"] is None:  # not restorable exactly: start fresh episodes
            venv.reset_all()
            return
        venv.envs = [load_env(blob, fresh)
                     for blob, fresh in zip(state["envs"], venv.envs, strict=True)]  # type: ignore[arg-type]
        venv.obs[:] = state["obs"]
        venv.steps_in_episode[:] = state["steps_in_episode"]
        self.tracker.load_state_dict(state["tracker"])  # type: ignore[arg-type]
        if state["behaviour"] is not None:
            self.behaviour.load_state_dict(state["behaviour"])  # type: ignore[attr-defined]

    def reset_counts(self) -> np.ndarray:
        counts, self.mixture_counts = self.mixture_counts, np.zeros_like(self.mixture_counts)
        return counts
