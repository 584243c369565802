"""The twin Q-functions of the three architectures (see `learning.nn.heads`): Q^1 and Q^2 of every
task evaluated together, the Q-switch's scoring of every proposal, and a taped forward pass for the
hand-written gradients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from learning.nn.heads import Architecture, select_head, select_head_backward
from learning.nn.networks import EnsembleMLP, MLPTape


@dataclass
class CriticTape:
    net: MLPTape
    task_ids: torch.Tensor  # (2G, B): the head of each twin's sample


class TwinCritic(nn.Module):
    """Twin Q-functions Q^1, Q^2 of N tasks evaluated together: (G, B) pairs -> (2, G, B)."""

    #: `forward_taped` and `backward` give the hand-written update its gradients
    hand_written_backward = True

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
