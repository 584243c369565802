"""Behaviour policies: how the N task environments choose their actions at each lockstep step.

`OwnPolicy` acts with each task's own policy; QMP's mixture, the `QSwitch`, is in
`learning.policies.qswitch_mixture_policies_wrapper`. Both run one batched forward pass for all
tasks.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from learning.nn.distributions import tanh_gaussian_action
from learning.policies.task_policy import TaskPolicy


class Behaviour(Protocol):
    def act(
        self, obs: torch.Tensor, steps_in_episode: np.ndarray, deterministic: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """R copies of the task set: obs (R, N, d) network inputs, steps (R, N) -> actions
        (R, N, A) float32 and acting policy ids (R, N)."""
        ...


class OwnPolicy:
    """Every task acts with its own policy."""

    def __init__(self, policy: TaskPolicy) -> None:
        self.policy = policy
        self._ids = np.arange(policy.num_tasks)

    @torch.inference_mode()
    def act(
        self, obs: torch.Tensor, steps_in_episode: np.ndarray, deterministic: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        mean, log_std = self.policy.own(obs)
        action = torch.tanh(mean) if deterministic else tanh_gaussian_action(mean, log_std)
        return action.numpy(), np.broadcast_to(self._ids, steps_in_episode.shape)
