"""How each method family turns its replay buffer into gradient steps.

* `per_task` (Separated: dnc_sac, qmp_dnc): every task trains on batches from its own buffer; the
  round's gradient budget is split over tasks in proportion to the samples each contributed
  (`split_gradient_steps`), and all tasks' steps run together as one batched update.
* `mixed` (Parameters: sac, mtsac, qmp_sac): one network trained on batches drawn uniformly from
  all tasks' data, `gradient_steps_per_itr` updates a round.
* `sharing` (Data: uds_dnc, qmp_uds_dnc): per-task updates on the task's own batch plus other tasks'
  transitions relabelled with the env's min_reward, optionally kept only where Q_i^1 exceeds the
  `sharing_quantile` of Q_i^1 on the task's own batch (unsupervised data sharing, UDS).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from learning.replay_buffer import MultiTaskReplayBuffer, TransitionBatch
from learning.sac import MultiTaskSAC, TaskStatistics
from learning.task_networks import TwinCritic

Sampling = Literal["per_task", "mixed", "sharing"]


def split_gradient_steps(total: int, samples_per_task: np.ndarray) -> np.ndarray:
    """Gradient steps per task: max(1, floor(total * n_i / sum_j n_j)), as the original did."""
    samples = np.asarray(samples_per_task, dtype=np.float64)
    share = np.floor(total * samples / samples.sum()).astype(np.int64)
    return np.maximum(1, share)


def sharing_weights(
    critic: TwinCritic, batch: TransitionBatch, own: int, quantile: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """UDS filter: weight 1 for a task's own transitions and for shared ones whose Q_i^1 exceeds
    the threshold taken from Q_i^1 on the own batch; returns (weights (N, B'), kept fraction (N,)).

    The threshold is element floor(own * q) of [-inf] + sorted(Q_own), as in the original:
    quantile 0 shares everything.
    """
    n, total = batch.task_ids.shape
    if quantile <= 0.0:
        return torch.ones(n, total), torch.ones(n)
    with torch.no_grad():
        q1 = critic(batch.obs, batch.actions, batch.task_ids)[0]
        k = int(math.floor(own * quantile))
        if k == 0:
            threshold = torch.full((n, 1), -math.inf)
        else:
            threshold = q1[:, :own].sort(dim=1).values[:, k - 1 : k]
        kept = (q1[:, own:] > threshold).float()
    return torch.cat([torch.ones(n, own), kept], dim=1), kept.mean(1)


class Learner:
    """Gradient steps of one method family on a `MultiTaskSAC`."""

    def __init__(
        self,
        sac: MultiTaskSAC,
        buffer: MultiTaskReplayBuffer,
        *,
        sampling: Sampling,
        gradient_steps_per_itr: int,
        buffer_batch_size: int,
        min_buffer_size: int,
        min_reward: float = 0.0,
        sharing_quantile: float = 0.0,
    ) -> None:
        self.sac = sac
        self.buffer = buffer
        self.sampling = sampling
        self.gradient_steps_per_itr = gradient_steps_per_itr
        self.buffer_batch_size = buffer_batch_size
        self.min_buffer_size = min_buffer_size
        self.min_reward = min_reward
        self.sharing_quantile = sharing_quantile
        self.num_tasks = buffer.num_tasks
        self.shared_data = TaskStatistics(("SharedData",), self.num_tasks)
        self.gradient_steps = 0

    # ------------------------------------------------------------------ collection schedule
    def _stored(self) -> int:
        """Transitions that count towards min_buffer_size (per task, or in the shared buffer)."""
        n = len(self.buffer)
        return n * self.num_tasks if self.sampling == "mixed" else n

    def warming_up(self) -> bool:
        return self._stored() < self.min_buffer_size

    def steps_to_collect(self, batch_size: int) -> int:
        """Lockstep steps (per task) of the next round: the warm-up fill, then batch_size / N."""
        if not self.warming_up():
            return max(1, batch_size // self.num_tasks)
        if self.sampling == "mixed":
            return math.ceil(self.min_buffer_size / self.num_tasks)
        return self.min_buffer_size

    # ------------------------------------------------------------------ training
    def updates_per_round(self, steps_per_task: int) -> int:
        if self.sampling == "mixed":
            return self.gradient_steps_per_itr
        samples = np.full(self.num_tasks, steps_per_task)
        per_task = split_gradient_steps(self.gradient_steps_per_itr, samples)
        # lockstep collection gives every task the same samples, hence the same step count
        assert (per_task == per_task[0]).all()
        return int(per_task[0])

    def train_round(self, steps_per_task: int,
                    between_updates: Callable[[], None] | None = None) -> None:
        """The round's gradient updates (`between_updates` runs before each one)."""
        if self.warming_up():
            return
        kl = self.sac.kl_coeff is not None
        per_task_obs = max(1, self.buffer_batch_size // self.num_tasks)
        for _ in range(self.updates_per_round(steps_per_task)):
            if between_updates is not None:
                between_updates()
            batch = self.sample()
            kl_obs = self.buffer.sample_observations(per_task_obs) if kl else None
            self.sac.update(batch, kl_obs)
        self.gradient_steps += self.updates_per_round(steps_per_task)

    def sample(self) -> TransitionBatch:
        b = self.buffer_batch_size
        if self.sampling == "mixed":
            return self.buffer.sample_mixed(b)
        if self.sampling == "per_task":
            return self.buffer.sample_per_task(b)
        batch = self.buffer.sample_with_sharing(b, self.min_reward)
        weights, kept = sharing_weights(self.sac.critic, batch, b, self.sharing_quantile)
        self.shared_data.add(kept.view(1, -1, 1), torch.arange(self.num_tasks).view(-1, 1), None)
        return batch.with_weights(weights)
