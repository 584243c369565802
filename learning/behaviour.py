"""Behaviour policies: how the N task environments choose their actions at each lockstep step.

`OwnPolicy` acts with each task's own policy. `QSwitch` is QMP's mixture: every task policy proposes
an action for every task's observation, task i's critic scores the proposals at their mean actions,
and task i executes the best proposal's sampled action (its mean when deterministic). Both run one
batched forward pass for all tasks; the Q-switch scores all N x N (observation, proposal) pairs at
once.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import torch

from learning.distributions import tanh_gaussian_action
from learning.task_networks import TaskPolicy, TwinCritic


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


class QSwitch:
    """QMP's Q-switch mixture of the N task policies.

    `critic="q1"` scores with the first critic as the original did; `"min"` with min(Q1, Q2).
    With `sampling_freq` k > 1 a task re-selects only every k steps of its episode and in between
    draws fresh actions from the policy it selected last.
    """

    def __init__(
        self,
        policy: TaskPolicy,
        critic: TwinCritic,
        *,
        critic_choice: Literal["q1", "min"] = "q1",
        sampling_freq: int = 1,
    ) -> None:
        if sampling_freq < 1:
            raise ValueError("policy_sampling_freq must be >= 1")
        self.policy = policy
        self.critic = critic
        self.critic_choice = critic_choice
        self.sampling_freq = sampling_freq
        self._current = torch.zeros(0, dtype=torch.long)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"current": self._current.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._current = state["current"].clone()

    def scores(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Q_i of every proposal j at observation (r, i): (R, N_i, N_j), with the proposals'
        pre-tanh means and log-stds (N_j, R, N_i, A)."""
        mean, log_std = self.policy.candidates(obs)
        twins = 1 if self.critic_choice == "q1" else 2
        q = self.critic.score_candidates(obs, torch.tanh(mean), twins)
        return q.min(0).values, mean, log_std

    @torch.inference_mode()
    def act(
        self, obs: torch.Tensor, steps_in_episode: np.ndarray, deterministic: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        score, mean, log_std = self.scores(obs)
        best = score.argmax(dim=-1)  # (R, N_i); ties -> lowest index
        if self.sampling_freq > 1 and self._current.shape == best.shape:
            reselect = torch.from_numpy(steps_in_episode % self.sampling_freq == 0)
            best = torch.where(reselect, best, self._current)
        self._current = best
        index = best.unsqueeze(0).unsqueeze(-1).expand(1, *best.shape, mean.shape[-1])
        chosen_mean = mean.gather(0, index).squeeze(0)
        chosen_log_std = log_std.gather(0, index).squeeze(0)
        if deterministic:
            action = torch.tanh(chosen_mean)
        else:
            action = tanh_gaussian_action(chosen_mean, chosen_log_std)
        return action.numpy(), best.numpy()
