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
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn

from learning.distributions import LOG_STD_MAX, LOG_STD_MIN, split_mean_log_std
from learning.networks import EnsembleMLP, MLPTape


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


def select_head_backward(grad: torch.Tensor, task_ids: torch.Tensor, heads: int) -> torch.Tensor:
    """Gradient of `select_head`'s input: each sample's (M, B, k) gradient placed in its head's
    columns of (M, B, heads * k), zeros elsewhere."""
    if heads == 1:
        return grad
    m, b, k = grad.shape
    index = task_ids.reshape(m, b, 1, 1).expand(m, b, 1, k)
    full = torch.zeros(m, b, heads, k, dtype=grad.dtype)
    return full.scatter_(2, index, grad.unsqueeze(2)).view(m, b, heads * k)


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


@dataclass
class CriticTape:
    net: MLPTape
    task_ids: torch.Tensor  # (2G, B): the head of each twin's sample


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
        self.action_dim = action_dim
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
        self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor, twins: int = 2
    ) -> torch.Tensor:
        """obs (G, B, d), actions (G, B, A), task_ids (G, B) -> Q values (twins, G, B).

        `twins=1` evaluates Q1 only (half the work, for the Q-switch's default rule)."""
        g, b = task_ids.shape
        if twins == 2:
            x, ids = self._twin_inputs(obs, actions, task_ids)
        else:
            x, ids = torch.cat([obs, actions], dim=-1), task_ids
        out = self.net(x, slice(0, twins * g))
        return select_head(out, ids, self.heads).view(twins, g, b)

    def _twin_inputs(self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        g, b = task_ids.shape
        x = torch.cat([obs, actions], dim=-1)
        x = x.unsqueeze(0).expand(2, *x.shape).reshape(2 * g, b, -1)
        return x, task_ids.unsqueeze(0).expand(2, g, b).reshape(2 * g, b)

    def forward_taped(self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor
                      ) -> tuple[torch.Tensor, CriticTape]:
        """Both twins' Q values (2, G, B) and the tape `backward` needs."""
        g, b = task_ids.shape
        x, ids = self._twin_inputs(obs, actions, task_ids)
        out, net_tape = self.net.forward_taped(x)
        return select_head(out, ids, self.heads).view(2, g, b), CriticTape(net_tape, ids)

    def backward(
        self, tape: CriticTape, grad_q: torch.Tensor, *, param_grads: bool, action_grad: bool
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """From the gradient of the Q values (2, G, B): the actions' gradient (G, B, A) if
        `action_grad`, and the parameter gradients if `param_grads` (else [])."""
        two_g, b = tape.task_ids.shape
        grad = select_head_backward(grad_q.reshape(two_g, b, 1), tape.task_ids, self.heads)
        obs_dim = self.net.in_features - self.action_dim
        input_grad, grads = self.net.backward(
            tape.net, grad, param_grads=param_grads,
            input_grad_from=obs_dim if action_grad else None,
        )
        if input_grad is not None:  # each action feeds both twins
            input_grad = input_grad.view(2, two_g // 2, b, -1).sum(0)
        return input_grad, grads

    def score_candidates(
        self, obs: torch.Tensor, candidates: torch.Tensor, twins: int = 2
    ) -> torch.Tensor:
        """Task i's critics on proposal j's action at observation (r, i).

        obs (R, N, d), candidates (N_j, R, N_i, A) -> (twins, R, N_i, N_j). Each observation is
        paired with the proposals made *for that observation* (the original's batched path
        paired observations with other observations' proposals).
        """
        r, n, d = obs.shape
        actions = candidates.permute(1, 2, 0, 3)  # (R, N_i, N_j, A)
        obs_pairs = obs.unsqueeze(2).expand(r, n, n, d)
        task_ids = torch.arange(n).view(1, n, 1).expand(r, n, n)
        if self.groups == n:  # group i = task i's critic: rows (r, j)
            q = self(
                obs_pairs.transpose(0, 1).reshape(n, r * n, d),
                actions.transpose(0, 1).reshape(n, r * n, -1),
                task_ids.transpose(0, 1).reshape(n, r * n),
                twins,
            )
            return q.view(twins, n, r, n).transpose(1, 2)
        q = self(obs_pairs.reshape(1, -1, d), actions.reshape(1, r * n * n, -1),
                 task_ids.reshape(1, -1), twins)
        return q.view(twins, r, n, n)
