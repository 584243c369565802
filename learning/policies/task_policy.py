"""The task policies of the three architectures (see `learning.nn.heads`): tanh-Gaussian heads,
one per task, evaluated together on a (G, B) batch, with a taped forward pass for the hand-written
gradients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from learning.nn.distributions import LOG_STD_MAX, LOG_STD_MIN, split_mean_log_std
from learning.nn.heads import Architecture, select_head, select_head_backward
from learning.nn.networks import EnsembleMLP, MLPTape


@dataclass
class PolicyTape:
    """A taped policy forward pass: the network's tape, the head choice and the unclamped
    log-std (the clamp passes gradient only inside its bounds)."""

    net: MLPTape
    task_ids: torch.Tensor
    raw_log_std: torch.Tensor

    def rows(self, stop: int) -> PolicyTape:
        """The tape of samples [0, stop) of every group."""
        return PolicyTape(self.net.rows(stop), self.task_ids[:, :stop],
                          self.raw_log_std[:, :stop])


class TaskPolicy(nn.Module):
    """Tanh-Gaussian policies of N tasks; returns pre-tanh means and clamped log-stds."""

    def __init__(
        self,
        architecture: Architecture,
        num_tasks: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
    ) -> None:
        super().__init__()
        self.architecture = Architecture(architecture)
        self.num_tasks = num_tasks
        self.action_dim = action_dim
        members = num_tasks if self.architecture is Architecture.SEPARATE else 1
        self.heads = num_tasks if self.architecture is Architecture.MULTIHEAD else 1
        self.net = EnsembleMLP(
            members, obs_dim, hidden_sizes, self.heads * 2 * action_dim, out_blocks=self.heads * 2
        )

    @property
    def per_task_groups(self) -> bool:
        return self.architecture is Architecture.SEPARATE

    def forward(
        self, obs: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (G, B, d), task_ids (G, B) -> mean, log_std (G, B, A). One shared network
        evaluates any grouping (e.g. MCAL's per-task slices) as one batch."""
        g, b = task_ids.shape
        if not self.per_task_groups and g > 1:
            mean, log_std = self(obs.reshape(1, g * b, -1), task_ids.reshape(1, g * b))
            return mean.view(g, b, -1), log_std.view(g, b, -1)
        return split_mean_log_std(select_head(self.net(obs), task_ids, self.heads))

    def forward_taped(
        self, obs: torch.Tensor, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, PolicyTape]:
        """`forward` that also returns the tape `backward` needs."""
        out, net_tape = self.net.forward_taped(obs)
        params = select_head(out, task_ids, self.heads)
        mean, log_std = split_mean_log_std(params)
        return mean, log_std, PolicyTape(net_tape, task_ids, params[..., self.action_dim:])

    def backward(self, tape: PolicyTape, grad_mean: torch.Tensor, grad_log_std: torch.Tensor
                 ) -> list[torch.Tensor]:
        """Parameter gradients (in `parameters()` order) from those of the mean and log-std."""
        inside = (tape.raw_log_std >= LOG_STD_MIN) & (tape.raw_log_std <= LOG_STD_MAX)
        grad = torch.cat([grad_mean, grad_log_std * inside], dim=-1)
        grad = select_head_backward(grad, tape.task_ids, self.heads)
        return self.net.backward(tape.net, grad)[1]

    def own(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each task's own policy on R copies of the task set: obs (R, N, d) -> (R, N, A) each,
        row (r, i) being task i's observation."""
        r, n, d = obs.shape
        tasks = torch.arange(n)
        if self.per_task_groups:
            mean, log_std = self(obs.transpose(0, 1), tasks.unsqueeze(1).expand(n, r))
            return mean.transpose(0, 1), log_std.transpose(0, 1)
        mean, log_std = self(obs.reshape(1, r * n, d), tasks.repeat(r).unsqueeze(0))
        return mean.view(r, n, -1), log_std.view(r, n, -1)

    def candidates(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every policy j on every observation (r, i): obs (R, N, d) -> (N_j, R, N_i, A) each."""
        r, n, d = obs.shape
        flat = obs.reshape(1, r * n, d)
        if self.architecture is Architecture.SEPARATE:
            out = self.net(flat.expand(n, r * n, d)).view(n, r, n, -1)  # member j sees all obs
        elif self.architecture is Architecture.MULTIHEAD:
            out = self.net(flat).view(r, n, n, -1).permute(2, 0, 1, 3)  # all heads
        else:
            raise ValueError("the shared architecture has a single policy: no candidates to mix")
        return split_mean_log_std(out)
