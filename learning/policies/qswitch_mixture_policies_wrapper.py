"""QMP's mixture policy: the Q-switch over the N task policies (the original's
`QswitchMixtureOfPoliciesWrapper`).

While task i collects data, every task policy j proposes an action for task i's observation, task
i's critic scores each proposal at its mean action, and task i executes the best proposal's sampled
action (its mean when deterministic). `QSwitch.get_action` is that rule for one observation of one
task, as the original's single-step `get_action`; `QSwitch.act` applies it to every task (and every
env copy) at once, scoring all N x N (observation, proposal) pairs in one batched pass: it is what
the sampler and the evaluation call.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from learning.nn.distributions import tanh_gaussian_action
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic


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
        self.reset()

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

    def reset(self) -> None:
        """Start a new episode for `get_action`: its first step selects afresh."""
        self._episode_step = 0
        self._episode_choice = -1

    @torch.inference_mode()
    def get_action(self, observation: np.ndarray | torch.Tensor, task: int,
                   deterministic: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
        """The Q-switch for one step of task `task`: observation (d,) is the network input.

        On a selection step (every `sampling_freq`-th step of the episode, counted from `reset`)
        every policy proposes, task `task`'s critic scores the proposals' mean actions and the best
        one is kept; the action is a sample of the kept policy (its mean when deterministic).
        Returns the action (A,) and the original's agent info: the kept policy's `mean` (tanh of
        the pre-tanh mean) and `log_std`, `policy_id` = `task_id` = the task (the buffer the step
        goes to) and `real_policy_id`, the policy that acted."""
        obs = torch.as_tensor(observation, dtype=torch.float32).reshape(1, 1, -1)
        n = self.policy.num_tasks
        if not 0 <= task < n:
            raise ValueError(f"task must be in [0, {n}), got {task}")
        step, choice = self._episode_step, self._episode_choice
        # every task slot holds the one observation: row `task` of the batched scores is the rule
        score, mean, log_std = self.scores(obs.expand(1, n, obs.shape[-1]))
        if choice < 0 or step % self.sampling_freq == 0:
            choice = int(score[0, task].argmax())  # ties -> lowest index
        self._episode_step, self._episode_choice = step + 1, choice
        chosen_mean, chosen_log_std = mean[choice, 0, task], log_std[choice, 0, task]
        if deterministic:
            action = torch.tanh(chosen_mean)
        else:
            action = tanh_gaussian_action(chosen_mean, chosen_log_std)
        info = {"mean": torch.tanh(chosen_mean).numpy(), "log_std": chosen_log_std.numpy(),
                "policy_id": task, "real_policy_id": choice, "task_id": task}
        return action.numpy(), info
