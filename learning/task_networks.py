"""Per-task policies and twin critics for the three architectures of the paper.

Batches are laid out as (G, B, ...) "groups": with the `separate` architecture G = N and group g is
task g's data for task g's network (ensemble member g); with `multihead` and `shared` there is one
network, G = 1, and `task_ids` (G, B) picks each sample's head (multihead) or is ignored (shared).

* separate:  N policies / 2N critics = ensembles of N / 2N members, one head each;
* multihead: one trunk with N task heads (policy: (mean, log_std) per task; critic: a Q per task);
* shared:    one network, one head (the task one-hot, if any, is part of the input).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import torch
from torch import nn

from learning.distributions import split_mean_log_std
from learning.networks import EnsembleMLP


class Architecture(StrEnum):
    SEPARATE = "separate"
    MULTIHEAD = "multihead"
    SHARED = "shared"


def select_head(out: torch.Tensor, task_ids: torch.Tensor, heads: int) -> torch.Tensor:
    """Pick each sample's head from (M, B, heads * k) outputs with task_ids (M, B) -> (M, B, k)."""
    if heads == 1:
        return out
    m, b, width = out.shape
    k = width // heads
    index = task_ids.reshape(m, b, 1, 1).expand(m, b, 1, k)
    return out.view(m, b, heads, k).gather(2, index).squeeze(2)


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
        """obs (G, B, d), task_ids (G, B) -> mean, log_std (G, B, A)."""
        return split_mean_log_std(select_head(self.net(obs), task_ids, self.heads))

    def own(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each task's own policy on its observation: obs (N, d) -> mean, log_std (N, A)."""
        tasks = torch.arange(self.num_tasks)
        if self.per_task_groups:
            mean, log_std = self(obs.unsqueeze(1), tasks.unsqueeze(1))
            return mean.squeeze(1), log_std.squeeze(1)
        mean, log_std = self(obs.unsqueeze(0), tasks.unsqueeze(0))
        return mean.squeeze(0), log_std.squeeze(0)

    def candidates(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every policy j on every task's observation i: obs (N, d) -> (N_j, N_i, A) each."""
        n = self.num_tasks
        if self.architecture is Architecture.SEPARATE:
            out = self.net(obs.unsqueeze(0).expand(n, *obs.shape))  # member j sees all obs
        elif self.architecture is Architecture.MULTIHEAD:
            out = self.net(obs.unsqueeze(0)).view(n, n, -1).transpose(0, 1)  # all heads
        else:
            raise ValueError("the shared architecture has a single policy: no candidates to mix")
        return split_mean_log_std(out)


class TwinCritic(nn.Module):
    """Twin Q-functions Q^1, Q^2 of N tasks evaluated together: (G, B) pairs -> (2, G, B)."""

    def __init__(
        self,
        architecture: Architecture,
        num_tasks: int,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int],
        *,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.architecture = Architecture(architecture)
        self.num_tasks = num_tasks
        self.groups = num_tasks if self.architecture is Architecture.SEPARATE else 1
        self.heads = num_tasks if self.architecture is Architecture.MULTIHEAD else 1
        self.net = EnsembleMLP(
            2 * self.groups,
            obs_dim + action_dim,
            hidden_sizes,
            self.heads,
            layer_norm=layer_norm,
            normal_init=True,
            out_blocks=self.heads,
        )

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor
    ) -> torch.Tensor:
        """obs (G, B, d), actions (G, B, A), task_ids (G, B) -> Q values (2, G, B)."""
        g, b = task_ids.shape
        x = torch.cat([obs, actions], dim=-1)
        x = x.unsqueeze(0).expand(2, *x.shape).reshape(2 * g, b, -1)
        ids = task_ids.unsqueeze(0).expand(2, g, b).reshape(2 * g, b)
        return select_head(self.net(x), ids, self.heads).view(2, g, b)

    def score_candidates(self, obs: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Task i's critics on candidate j's action at task i's observation.

        obs (N, d), candidates (N_j, N_i, A) -> (2, N_i, N_j). Observation i is paired with the
        candidates proposed *for observation i* (the original's batched path mixed these up).
        """
        n = self.num_tasks
        actions = candidates.transpose(0, 1)  # (N_i, N_j, A)
        obs_pairs = obs.unsqueeze(1).expand(n, n, obs.shape[-1])
        task_ids = torch.arange(n).unsqueeze(1).expand(n, n)
        if self.groups == n:
            return self(obs_pairs, actions, task_ids)
        flat = self(
            obs_pairs.reshape(1, n * n, -1), actions.reshape(1, n * n, -1), task_ids.reshape(1, -1)
        )
        return flat.view(2, n, n)
