"""How each method family turns its replay buffer into gradient steps.

* `per_task` (Separated: dnc_sac, qmp_dnc): every task trains on batches from its own buffer; the
  round's gradient budget is split over tasks in proportion to the samples each contributed
  (`split_gradient_steps`), and all tasks' steps run together as batched updates (a task whose
  steps are used up sits out the remaining ones).
* `mixed` (Parameters: sac, mtsac, qmp_sac): one network trained on batches drawn uniformly from
  all tasks' data, `gradient_steps_per_itr` updates a round.
* `sharing` (Data: uds_dnc, qmp_uds_dnc): per-task updates on the task's own batch plus other tasks'
  transitions relabelled with the env's min_reward (unsupervised data sharing, UDS) or, given the
  env's reward function, with task i's own reward of each (conservative data sharing, CDS:
  `uds_dnc --unsupervised False`), optionally kept only where Q_i^1 exceeds the
  `sharing_quantile` of Q_i^1 on the task's own batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from learning.algorithms.distillation import Distillation
from learning.algorithms.sac import MultiTaskSAC, TaskStatistics
from learning.buffers.replay_buffer import MultiTaskReplayBuffer, RewardFn, TransitionBatch
from learning.q_functions.twin_critic import TwinCritic

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
        distillation: Distillation | None = None,
        distillation_period: int = 0,
        actor_batches: Literal["own", "all_tasks"] = "own",
        reward_fn: RewardFn | None = None,
    ) -> None:
        self.sac = sac
        self.buffer = buffer
        self.sampling = sampling
        self.gradient_steps_per_itr = gradient_steps_per_itr
        self.buffer_batch_size = buffer_batch_size
        self.min_buffer_size = min_buffer_size
        self.min_reward = min_reward
        self.sharing_quantile = sharing_quantile
        #: `sharing` with a reward function relabels shared data with it (CDS), not min_reward
        self.reward_fn = reward_fn
        self.num_tasks = buffer.num_tasks
        self.shared_data = TaskStatistics(("SharedData",), self.num_tasks)
        #: batched updates so far, and gradient steps of each task since the last read-out
        self.gradient_steps = 0
        self.task_gradient_steps = np.zeros(self.num_tasks, dtype=np.int64)
        #: DnC's distillation, run after the training of every distillation_period-th epoch
        self.distillation = distillation
        self.distillation_period = distillation_period
        #: MCAL ("all_tasks"): every task's step also steps the shared actor once, on
        #: buffer_batch_size // N transitions from every task's buffer
        self.actor_batches = actor_batches

    # ------------------------------------------------------------------ collection schedule
    def warming_up(self) -> bool:
        """Below min_buffer_size: any task's buffer (per-task families) or the shared buffer."""
        if self.sampling == "mixed":
            return len(self.buffer) < self.min_buffer_size
        return bool((self.buffer.task_sizes() < self.min_buffer_size).any())

    def steps_to_collect(self, batch_size: int) -> int:
        """Env steps (over all tasks) of the next round: batch_size, or while warming up
        min_buffer_size per task (per-task families) or in all (Parameters), as the original."""
        if not self.warming_up():
            return batch_size
        return self.min_buffer_size * (1 if self.sampling == "mixed" else self.num_tasks)

    # ------------------------------------------------------------------ training
    def gradient_steps_per_task(self, samples_per_task: np.ndarray) -> np.ndarray:
        """The round's gradient steps of every task (the same count for all with `mixed`)."""
        if self.sampling == "mixed":
            return np.full(self.num_tasks, self.gradient_steps_per_itr)
        return split_gradient_steps(self.gradient_steps_per_itr, samples_per_task)

    def train_round(self, samples_per_task: np.ndarray,
                    between_updates: Callable[[], None] | None = None) -> None:
        """The round's gradient updates (`between_updates` runs before each one).

        Per-task families run max_i(steps_i) batched updates; update t steps the tasks with
        steps_i > t. As in the original, a task whose buffer holds fewer than min_buffer_size
        transitions takes no gradient step but its target critics are still Polyak-updated."""
        if self.sampling == "mixed":
            if self.warming_up():
                return
            for _ in range(self.gradient_steps_per_itr):
                if between_updates is not None:
                    between_updates()
                self.sac.update(self.sample())
            self.gradient_steps += self.gradient_steps_per_itr
            self.task_gradient_steps += self.gradient_steps_per_itr
            return
        counts = self.gradient_steps_per_task(samples_per_task)
        ready = self.buffer.task_sizes() >= self.min_buffer_size
        kl = self.sac.kl_coeff is not None
        per_task_obs = max(1, self.buffer_batch_size // self.num_tasks)
        for t in range(int(counts.max())):
            left = counts > t
            stepping = left & ready
            if left.all() and ready.all():
                left = stepping = None  # every task: the unmasked update
            if between_updates is not None:
                between_updates()
            if stepping is None or stepping.any():
                batch = self.sample(stepping)
                kl_obs = self.buffer.sample_observations(per_task_obs) if kl else None
                actor = []
                if self.actor_batches == "all_tasks":
                    steps = self.num_tasks if stepping is None else int(stepping.sum())
                    actor = [self._actor_batch(per_task_obs, ready) for _ in range(steps)]
                self.sac.update(batch, kl_obs, stepping, actor)
            if left is not None and (left & ~ready).any():
                self.sac.soft_update_targets(left & ~ready)
            self.gradient_steps += 1
        self.task_gradient_steps += counts * ready

    def _actor_batch(self, per_task: int, ready: np.ndarray) -> TransitionBatch:
        """MCAL's actor batch: `per_task` transitions of every task; the tasks whose buffer is
        below min_buffer_size (possibly empty: zero rows) weigh 0."""
        batch = self.buffer.sample_per_task(per_task)
        if ready.all():
            return batch
        weights = torch.from_numpy(ready).float().view(-1, 1).expand(-1, per_task)
        return batch.with_weights(weights.contiguous())

    def after_epoch(self, epoch: int) -> float | None:
        """End-of-epoch work: DnC's distillation on epochs P, 2P, ... (not 0); returns its mean
        loss, NaN on the other epochs, None without distillation."""
        if self.distillation is None:
            return None
        if epoch > 0 and epoch % self.distillation_period == 0:
            return self.distillation.run(self.buffer)
        return float("nan")

    def state_dict(self) -> dict[str, object]:
        """What the learner adds to a checkpoint (the networks are the SAC's)."""
        state: dict[str, object] = {"gradient_steps": self.gradient_steps}
        if self.distillation is not None:
            state["distillation"] = self.distillation.state_dict()
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.gradient_steps = int(state["gradient_steps"])  # type: ignore[call-overload]
        if self.distillation is not None:
            self.distillation.load_state_dict(state["distillation"])  # type: ignore[arg-type]

    def pop_task_gradient_steps(self) -> np.ndarray:
        """Gradient steps each task took since the last call."""
        steps, self.task_gradient_steps = self.task_gradient_steps, np.zeros_like(
            self.task_gradient_steps)
        return steps

    def sample(self, tasks: np.ndarray | None = None) -> TransitionBatch:
        """A training batch of the family (`tasks`: the tasks that step, for statistics)."""
        b = self.buffer_batch_size
        if self.sampling == "mixed":
            return self.buffer.sample_mixed(b)
        if self.sampling == "per_task":
            return self.buffer.sample_per_task(b)
        batch = self.buffer.sample_with_sharing(b, self.min_reward, self.reward_fn)
        weights, kept = sharing_weights(self.sac.critic, batch, b, self.sharing_quantile)
        stepped = None if tasks is None else torch.from_numpy(tasks).float().view(-1, 1)
        self.shared_data.add(kept.view(1, -1, 1), torch.arange(self.num_tasks).view(-1, 1),
                             stepped)
        return batch.with_weights(weights)
