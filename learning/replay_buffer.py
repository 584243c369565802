"""Per-task replay buffers, preallocated in float32 and filled in lockstep.

The sampler steps the N task environments (or K copies of them) together, so every task adds the
same number of transitions per step and all N buffers share one write pointer. The arrays are
allocated once at full capacity with `np.empty`; the operating system only commits the pages that
are written.

Three ways to draw a training batch, one per method family:
* `sample_per_task`   - B transitions from each task's own buffer, laid out (N, B)   (Separated);
* `sample_mixed`      - B transitions uniformly over all stored transitions, (1, B)  (Parameters);
* `sample_with_sharing` - task i's own B plus B // (N-1) from every other task, (N, B + shared)
  with the shared rewards relabelled to the env's min_reward                          (Data, UDS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import torch


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
    """N FIFO buffers of `capacity` transitions each."""

    _ARRAYS = ("obs", "next_obs", "actions", "rewards", "terminals", "acting_policy")

    def __init__(
        self, num_tasks: int, capacity: int, obs_dim: int, action_dim: int, seed: int
    ) -> None:
        if capacity < 1:
            raise ValueError("replay buffer capacity must be positive")
        self.num_tasks = num_tasks
        self.capacity = capacity
        shape = (num_tasks, capacity)
        self.obs = np.empty((*shape, obs_dim), dtype=np.float32)
        self.next_obs = np.empty((*shape, obs_dim), dtype=np.float32)
        self.actions = np.empty((*shape, action_dim), dtype=np.float32)
        self.rewards = np.empty(shape, dtype=np.float32)
        self.terminals = np.empty(shape, dtype=np.float32)
        #: which task's policy chose each action (the Q-switch's choice; own task otherwise)
        self.acting_policy = np.empty(shape, dtype=np.int16)
        self.ptr = 0
        self.size = 0
        self.rng = np.random.default_rng(seed)
        self._rows = np.arange(num_tasks)[:, None]

    @staticmethod
    def bytes_needed(num_tasks: int, capacity: int, obs_dim: int, action_dim: int) -> int:
        """Memory the buffers take once full."""
        per_transition = 4 * (2 * obs_dim + action_dim + 2) + 2
        return num_tasks * capacity * per_transition

    def __len__(self) -> int:
        """Transitions stored per task."""
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminals: np.ndarray,
        acting_policy: np.ndarray,
    ) -> None:
        """Store lockstep steps: arrays laid out (N, ...) hold one step (row i: task i's
        transition); (K, N, ...) hold K env copies' steps, stored as K consecutive entries."""
        values = (obs, next_obs, actions, rewards, terminals, acting_policy)  # as _ARRAYS
        if rewards.ndim == 1:
            values = tuple(x[None] for x in values)
        k, p = values[3].shape[0], self.ptr
        where = slice(p, p + k) if p + k <= self.capacity else (p + np.arange(k)) % self.capacity
        for name, x in zip(self._ARRAYS, values, strict=True):
            getattr(self, name)[:, where] = x.swapaxes(0, 1)
        self.ptr = (p + k) % self.capacity
        self.size = min(self.size + k, self.capacity)

    def state_dict(self) -> dict[str, object]:
        """The filled part of the buffers, the write position and the sampling RNG."""
        n = self.size  # tensors: torch.save writes them ~4x faster than pickled numpy arrays
        arrays = {name: torch.from_numpy(getattr(self, name)[:, :n].copy())
                  for name in self._ARRAYS}
        return {"arrays": arrays, "ptr": self.ptr, "size": n,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, object]) -> None:
        n = int(state["size"])  # type: ignore[arg-type]
        if n > self.capacity:
            raise ValueError(f"checkpoint holds {n} transitions per task, capacity {self.capacity}")
        for name, values in state["arrays"].items():  # type: ignore[attr-defined]
            getattr(self, name)[:, :n] = values.numpy()
        self.ptr, self.size = int(state["ptr"]), n  # type: ignore[arg-type]
        self.rng.bit_generator.state = state["rng"]

    def _gather(
        self, tasks: np.ndarray, index: np.ndarray, learners: np.ndarray
    ) -> TransitionBatch:
        return TransitionBatch(
            obs=torch.from_numpy(self.obs[tasks, index]),
            actions=torch.from_numpy(self.actions[tasks, index]),
            rewards=torch.from_numpy(self.rewards[tasks, index]),
            next_obs=torch.from_numpy(self.next_obs[tasks, index]),
            terminals=torch.from_numpy(self.terminals[tasks, index]),
            task_ids=torch.from_numpy(np.asarray(learners, dtype=np.int64)).expand(index.shape),
        )

    def sample_per_task(self, batch_size: int) -> TransitionBatch:
        index = self.rng.integers(0, self.size, size=(self.num_tasks, batch_size))
        return self._gather(self._rows, index, self._rows)

    def sample_mixed(self, batch_size: int) -> TransitionBatch:
        flat = self.rng.integers(0, self.num_tasks * self.size, size=(1, batch_size))
        tasks, index = np.divmod(flat, self.size)
        return self._gather(tasks, index, tasks)

    def sample_with_sharing(self, batch_size: int, min_reward: float) -> TransitionBatch:
        """Own batch (first `batch_size` columns) then other tasks' data relabelled min_reward."""
        tasks = self._sharing_layout(batch_size)
        index = self.rng.integers(0, self.size, size=tasks.shape)
        batch = self._gather(tasks, index, self._rows)
        batch.rewards[:, batch_size:] = min_reward
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
        index = self.rng.integers(0, self.size, size=(self.num_tasks, per_task))
        return torch.from_numpy(self.obs[self._rows, index].reshape(-1, self.obs.shape[-1]))
