"""DECAF's critics: task i's Q-value is a state-action dependent mixture of every task's critic,
Q_i^DECAF(s, a) = sum_j w_ij(s, a) Q_j(s, a), with w_i(s, a) = softmax(MLP_i([s, a])) over the N
tasks (one weight network per task and twin, the critics' hidden sizes).

As in the authors' code, task i's losses train only its weight network and its own critic Q_i:
the other tasks' critics enter as constants (no gradient to their parameters, nor through them to
the action). The target critics are a Polyak-averaged copy of the whole module, so the target of
task i mixes every task's *target* critic. (The original's deep copy left the other tasks' critics
inside each target at their initial weights, because its Polyak update touched only the weight
network and the own critic.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from learning.nn.heads import Architecture
from learning.nn.networks import EnsembleMLP
from learning.q_functions.twin_critic import CriticTape, TwinCritic


class DecafCritic(TwinCritic):
    """Twin DECAF critics of N tasks: (N, B) pairs, group i task i's batch -> (2, N, B)."""

    #: the mixture has no hand-written backward; the update runs on autograd
    hand_written_backward = False

    def __init__(self, num_tasks: int, obs_dim: int, action_dim: int,
                 hidden_sizes: Sequence[int], *, layer_norm: bool = False) -> None:
        super().__init__(Architecture.SEPARATE, num_tasks, obs_dim, action_dim, hidden_sizes,
                         layer_norm=layer_norm)
        #: member t * N + i: the mixture weights (logits over the N tasks) of twin t of task i
        self.weights = EnsembleMLP(2 * num_tasks, obs_dim + action_dim, hidden_sizes, num_tasks,
                                   layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor,
                twins: int = 2) -> torch.Tensor:
        """obs (N, B, d), actions (N, B, A), group i holding task i's pairs -> (twins, N, B)."""
        n, b = task_ids.shape
        if n != self.num_tasks:
            raise ValueError(f"DECAF critics take one group per task ({self.num_tasks}), got "
                             f"{n}")
        x = torch.cat([obs, actions], dim=-1)
        members = slice(0, twins * n)
        pairs = x.unsqueeze(0).expand(twins, *x.shape).reshape(twins * n, b, -1)  # member t*N+i
        # w (twins, N_i, B, N_j): task i's softmax weights of task j's critic
        w = self.weights(pairs, members).view(twins, n, b, n).softmax(-1)
        own = self.net(pairs, members).view(twins, n, b, 1)  # Q_i on group i, with gradient
        with torch.no_grad():  # every critic on every group's pairs: constants
            every = self.net(x.reshape(1, n * b, -1), members).view(twins, n, n, b)
        diagonal = torch.eye(n, dtype=torch.bool).view(1, n, 1, n)
        q = torch.where(diagonal, own, every.permute(0, 2, 3, 1))  # (twins, N_i, B, N_j)
        return (w * q).sum(-1)

    def forward_taped(self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor
                      ) -> tuple[torch.Tensor, CriticTape]:
        raise NotImplementedError("DECAF critics train with autograd (no hand-written backward)")
