"""DnC's distillation (`--distillation_period P`): every P epochs a central policy is fitted to the
actions in every task's buffer, then copied into every task policy.

As the original: the central ("centroid") policy persists across distillations with its own Adam
and starts as a copy of task 0's policy; each of its `--distillation_n_epochs` steps maximises the
likelihood of a batch of stored actions (buffer_batch_size // N transitions of each task; the
pre-tanh value of a stored action a is atanh(a)); then every task policy's weights are overwritten
with the centroid's, their optimizer states left as they are.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.nn.distributions import tanh_gaussian_log_prob
from learning.nn.heads import Architecture
from learning.nn.optimizer import EnsembleAdam
from learning.policies.task_policy import TaskPolicy

#: stored actions are clipped to +-(1 - ACTION_EPS) before atanh (a saturated tanh stores +-1)
ACTION_EPS = 1e-6


class Distillation:
    """The centroid policy, its optimizer, and the distillation step."""

    def __init__(self, policy: TaskPolicy, lr: float, steps: int, batch_per_task: int) -> None:
        if policy.architecture is not Architecture.SEPARATE:
            raise ValueError("distillation copies one network into separate task policies")
        self.policy = policy
        self.steps = steps
        self.batch_per_task = batch_per_task
        self.centroid = TaskPolicy(Architecture.SEPARATE, 1, policy.net.in_features,
                                   policy.action_dim, [lin.weight.shape[-1] for lin, _ in
                                                       policy.net.layers[:-1]])
        with torch.no_grad():
            for mine, theirs in zip(self.centroid.parameters(), policy.parameters(), strict=True):
                mine.copy_(theirs[:1])
        self.optimizer = EnsembleAdam(self.centroid.parameters(), lr)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """-mean log pi_c(a | s) of stored (obs, action) pairs, obs (K, d), actions (K, A)."""
        zeros = torch.zeros(1, obs.shape[0], dtype=torch.long)
        mean, log_std = self.centroid(obs.unsqueeze(0), zeros)
        pre_tanh = torch.atanh(actions.clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS)).unsqueeze(0)
        return -tanh_gaussian_log_prob(mean, log_std, pre_tanh).mean()

    def run(self, buffer: MultiTaskReplayBuffer) -> float:
        """Fit the centroid for `steps` steps, copy it into every task policy; returns the mean
        loss of the steps."""
        losses = []
        params = list(self.centroid.parameters())
        for _ in range(self.steps):
            batch = buffer.sample_per_task(self.batch_per_task)
            obs = batch.obs.reshape(-1, batch.obs.shape[-1])
            actions = batch.actions.reshape(-1, batch.actions.shape[-1])
            loss = self.loss(obs, actions)
            for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
                p.grad = g
            self.optimizer.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            for task_param, central in zip(self.policy.parameters(), params, strict=True):
                task_param.copy_(central.expand_as(task_param))
        return float(np.mean(losses)) if losses else float("nan")

    def state_dict(self) -> dict[str, object]:
        return copy.deepcopy({"centroid": self.centroid.state_dict(),
                              "optimizer": self.optimizer.state_dict()})

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.centroid.load_state_dict(state["centroid"])  # type: ignore[arg-type]
        self.optimizer.load_state_dict(state["optimizer"])  # type: ignore[arg-type]
