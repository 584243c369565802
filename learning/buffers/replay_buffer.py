"""Replay buffers, preallocated in float32: one FIFO per task, or one FIFO shared by all tasks.

The Separated and Data methods keep one buffer per task (the original's per-task PathBuffers); the
Parameters methods keep one buffer for all tasks (the original's single PathBuffer), so a task that
collects more data holds a larger share of it. Each group has its own write pointer: with the
original's sampler the tasks collect different amounts. Episodes are stored whole, as the sampler
finishes them. The arrays are allocated once at full capacity with `np.zeros`; the operating
system commits only the pages that are written.

Three ways to draw a training batch, one per method family:
* `sample_per_task`   - B transitions from each task's own buffer, laid out (N, B)   (Separated);
* `sample_mixed`      - B transitions uniformly over all stored transitions, (1, B)  (Parameters);
* `sample_with_sharing` - task i's own B plus B // (N-1) from every other task, (N, B + shared)
  with the shared rewards relabelled to the env's min_reward (Data, UDS), or to task i's own
  reward of each shared transition given a reward function (CDS, `--unsupervised False`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

#: reward of task `task` for stored transitions (task, obs, actions, next_obs, reward_info) ->
#: (...,), as `environments.MultiTaskEnv.reward_fn` (reward_info None without `reward_info_dim`)
RewardFn = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


@dataclass
class TransitionBatch:
    """Transitions laid out in groups (G, B); `task_ids` name the task whose networks learn from
    each sample (for shared data that is the learner's task, not the task that collected it)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminals: torch.Tensor
    task_ids: torch.Tensor
    weights: torch.Tensor | None = None

    def with_weights(self, weights: torch.Tensor) -> TransitionBatch:
        return replace(self, weights=weights)


class MultiTaskReplayBuffer:
    """FIFO buffers of `capacity` transitions each: one per task, or one for all (`shared`).

    With `reward_info_dim` > 0 every transition also keeps that many floats for the env's
    `reward_fn` (CDS), given to `add` as `reward_info`."""

    def __init__(
        self, num_tasks: int, capacity: int, obs_dim: int, action_dim: int, seed: int,
        *, shared: bool = False, reward_info_dim: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError("replay buffer capacity must be positive")
        self.num_tasks = num_tasks
        self.capacity = capacity
        self.shared = shared
        groups = 1 if shared else num_tasks
        shape = (groups, capacity)
        self.obs = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.actions = np.zeros((*shape, action_dim), dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminals = np.zeros(shape, dtype=np.float32)
        #: which task's policy chose each action (the Q-switch's choice; own task otherwise)
        self.acting_policy = np.zeros(shape, dtype=np.int16)
        #: the task that collected each transition
        self.task = np.zeros(shape, dtype=np.int16)
        #: what the env's reward_fn needs beyond the transition (None without reward_info_dim)
        self.reward_info = (np.zeros((*shape, reward_info_dim), dtype=np.float32)
                            if reward_info_dim else None)
        #: the stored arrays, in `add`'s order (the collecting task last)
        self.array_names = ("obs", "next_obs", "actions", "rewards", "terminals", "acting_policy",
                        *(("reward_info",) if reward_info_dim else ()), "task")
        self.ptr = np.zeros(groups, dtype=np.int64)
        self.sizes = np.zeros(groups, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self._rows = np.arange(num_tasks)[:, None]
        #: what `rollback` restores: fills, pointers, RNG and the overwritten transitions
        self._mark: tuple[np.ndarray, np.ndarray, dict[str, object]] | None = None
        self._undo: list[tuple[int, np.ndarray, list[np.ndarray]]] = []

    @staticmethod
    def bytes_needed(groups: int, capacity: int, obs_dim: int, action_dim: int,
                     reward_info_dim: int = 0) -> int:
        """Memory the buffers of `groups` FIFOs take once full."""
        per_transition = 4 * (2 * obs_dim + action_dim + 2 + reward_info_dim) + 2 + 2
        return groups * capacity * per_transition

    def __len__(self) -> int:
        """Transitions stored in all."""
        return int(self.sizes.sum())

    def task_sizes(self) -> np.ndarray:
        """Transitions stored of each task, (N,)."""
        if not self.shared:
            return self.sizes.copy()
        return np.bincount(self.task[0, : self.sizes[0]], minlength=self.num_tasks)

    def add(
        self,
        task: int,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminals: np.ndarray,
        acting_policy: np.ndarray,
        reward_info: np.ndarray | None = None,
    ) -> None:
        """Store T consecutive transitions of one task (arrays laid out (T, ...))."""
        if (reward_info is None) != (self.reward_info is None):
            raise ValueError("reward_info must be given exactly when the buffer keeps it")
        values = (obs, next_obs, actions, rewards, terminals, acting_policy,  # as array_names
                  *(() if reward_info is None else (reward_info,)))
        g = 0 if self.shared else task
        t, p, cap = len(rewards), int(self.ptr[g]), self.capacity
        if t > cap:  # only the newest `capacity` survive
            values = tuple(x[t - cap:] for x in values)
            p, t = (p + t - cap) % cap, cap
        where = slice(p, p + t) if p + t <= cap else (p + np.arange(t)) % cap
        if self._mark is not None:  # keep what this overwrites, for rollback()
            slots = (p + np.arange(t)) % cap
            filled = slots[slots < self.sizes[g]]
            if len(filled):
                self._undo.append((g, filled, [getattr(self, name)[g, filled].copy()
                                               for name in self.array_names]))
        for name, x in zip(self.array_names[:-1], values, strict=True):
            getattr(self, name)[g, where] = x
        self.task[g, where] = task
        self.ptr[g] = (p + t) % cap
        self.sizes[g] = min(int(self.sizes[g]) + t, cap)

    def mark(self) -> None:
        """Remember this moment: `rollback` returns the buffers to it exactly. Until the next
        mark, adds keep a copy of the transitions they overwrite (at most one epoch's data)."""
        self._mark = (self.ptr.copy(), self.sizes.copy(), self.rng.bit_generator.state)
        self._undo = []

    def rollback(self) -> None:
        """Return to the last `mark` (the end of the last finished epoch, when a run stops)."""
        if self._mark is None:
            raise ValueError("rollback() without mark()")
        for g, slots, saved in reversed(self._undo):
            for name, values in zip(self.array_names, saved, strict=True):
                getattr(self, name)[g, slots] = values
        ptr, sizes, rng = self._mark
        self.ptr[:], self.sizes[:] = ptr, sizes
        self.rng.bit_generator.state = rng
        self._undo = []

    def state_dict(self) -> dict[str, object]:
        """The filled part of every group, the write positions and the sampling RNG."""
        # tensors: torch.save writes them ~4x faster than pickled numpy arrays
        arrays = {name: [torch.from_numpy(getattr(self, name)[g, :n].copy())
                         for g, n in enumerate(self.sizes.tolist())]
                  for name in self.array_names}
        return {"arrays": arrays, "ptr": self.ptr.copy(), "sizes": self.sizes.copy(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, object]) -> None:
        sizes = np.asarray(state["sizes"])
        if sizes.shape != self.sizes.shape:
            raise ValueError(f"checkpoint holds {len(sizes)} buffers, expected {len(self.sizes)}")
        if (sizes > self.capacity).any():
            raise ValueError(f"checkpoint holds {sizes.max()} transitions in a buffer, "
                             f"capacity {self.capacity}")
        arrays: dict[str, object] = state["arrays"]  # type: ignore[assignment]
        if set(arrays) != set(self.array_names):
            raise ValueError(f"checkpoint holds buffer arrays {sorted(arrays)}, expected "
                             f"{sorted(self.array_names)}")
        for name, groups in arrays.items():  # type: ignore[attr-defined]
            for g, values in enumerate(groups):
                getattr(self, name)[g, : len(values)] = values.numpy()
        self.ptr[:] = state["ptr"]
        self.sizes[:] = sizes
        self.rng.bit_generator.state = state["rng"]

    def _gather(
        self, groups: np.ndarray, index: np.ndarray, learners: np.ndarray
    ) -> TransitionBatch:
        return TransitionBatch(
            obs=torch.from_numpy(self.obs[groups, index]),
            actions=torch.from_numpy(self.actions[groups, index]),
            rewards=torch.from_numpy(self.rewards[groups, index]),
            next_obs=torch.from_numpy(self.next_obs[groups, index]),
            terminals=torch.from_numpy(self.terminals[groups, index]),
            task_ids=torch.from_numpy(np.asarray(learners, dtype=np.int64)).expand(index.shape),
        )

    def _indices(self, groups: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform positions in each entry's group; an empty group (a task that has no data
        yet, whose update is masked out) yields position 0 of its zero-filled arrays."""
        high = np.maximum(self.sizes[groups], 1)
        return self.rng.integers(0, high, size=shape)

    def _per_task(self) -> None:
        if self.shared:
            raise ValueError("per-task batches need per-task buffers")

    def sample_per_task(self, batch_size: int) -> TransitionBatch:
        self._per_task()
        index = self._indices(self._rows, (self.num_tasks, batch_size))
        return self._gather(self._rows, index, self._rows)

    def sample_mixed(self, batch_size: int) -> TransitionBatch:
        """Uniform over every stored transition, each labelled with the task that collected it."""
        if not self.shared:
            raise ValueError("mixed batches need the shared buffer")
        index = self.rng.integers(0, max(int(self.sizes[0]), 1), size=(1, batch_size))
        group = np.zeros_like(index)
        return self._gather(group, index, self.task[0, index])

    def sample_with_sharing(self, batch_size: int, min_reward: float,
                            reward_fn: RewardFn | None = None) -> TransitionBatch:
        """Own batch (first `batch_size` columns) then other tasks' data, its rewards relabelled
        min_reward (UDS) or, with `reward_fn`, row i's with task i's reward (CDS); terminals and
        next observations stay as stored."""
        self._per_task()
        tasks = self._sharing_layout(batch_size)
        index = self._indices(tasks, tasks.shape)
        batch = self._gather(tasks, index, self._rows)
        if reward_fn is None:
            batch.rewards[:, batch_size:] = min_reward
            return batch
        shared = slice(batch_size, None)
        info = (None if self.reward_info is None
                else self.reward_info[tasks[:, shared], index[:, shared]])
        for i in range(self.num_tasks):  # the gathered arrays are copies: safe to write
            rewards = reward_fn(i, batch.obs[i, shared].numpy(), batch.actions[i, shared].numpy(),
                                batch.next_obs[i, shared].numpy(),
                                None if info is None else info[i])
            batch.rewards[i, shared] = torch.from_numpy(np.asarray(rewards, dtype=np.float32))
        return batch

    @functools.cache  # noqa: B019  (one layout per batch size, for the buffer's lifetime)
    def _sharing_layout(self, batch_size: int) -> np.ndarray:
        """Source task of each column: row i holds i `batch_size` times, then every other task
        batch_size // (N - 1) times. Fixed per batch size, so built once."""
        n = self.num_tasks
        per_other = batch_size // (n - 1)
        others = np.array([[j for j in range(n) if j != i] for i in range(n)])
        own = np.broadcast_to(self._rows, (n, batch_size))
        return np.concatenate([own, np.repeat(others, per_other, axis=1)], axis=1)

    def sample_observations(self, per_task: int) -> torch.Tensor:
        """`per_task` observations from every task's buffer, flattened: (N * per_task, d)."""
        self._per_task()
        index = self._indices(self._rows, (self.num_tasks, per_task))
        return torch.from_numpy(self.obs[self._rows, index].reshape(-1, self.obs.shape[-1]))
