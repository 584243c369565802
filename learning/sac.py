"""Soft Actor-Critic for N tasks, one gradient step for all tasks at once.

The losses of all tasks are computed on a (G, B) batch (see `task_networks`) and reduced as the sum
over groups of each group's (weighted) mean. With per-task networks that sum gives every task the
gradient of its own loss; with one shared network it is the mean over the mixed batch, as in the
original's MTSAC. Order per step, as garage's SAC: critics, actor (with the fresh critics),
temperature, Polyak update of the target critics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from learning.distributions import (
    diagonal_gaussian_kl,
    diagonal_gaussian_kl_grad_q,
    gaussian_entropy,
    tanh_gaussian_draw,
)
from learning.optimizer import EnsembleAdam, member_views
from learning.replay_buffer import TransitionBatch
from learning.task_networks import TaskPolicy, TwinCritic

#: per-task statistics every update reports (means over the task's samples)
STAT_NAMES = (
    "Qf1Loss",
    "Qf2Loss",
    "Qf1",
    "Qf2",
    "QTarget",
    "PolicyLoss",
    "LogPi",
    "Entropy",
    "AlphaLoss",
    "AlphaTemperature",
)


@dataclass(frozen=True)
class SACConfig:
    discount: float = 0.99
    target_update_tau: float = 5e-3
    reward_scale: float = 1.0
    lr: float = 3e-4
    #: None means -|A|
    target_entropy: float | None = None
    #: one temperature per task, or one for all
    per_task_temperature: bool = True
    #: the DnC family differentiates -log_alpha * (...), the SAC family -alpha * (...)
    temperature_loss: Literal["log_alpha", "alpha"] = "log_alpha"


class TaskStatistics:
    """Running per-task sums of named statistics, averaged at read-out (one epoch's updates)."""

    def __init__(self, names: tuple[str, ...], num_tasks: int) -> None:
        self.names = names
        self.num_tasks = num_tasks
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.names), self.num_tasks, dtype=torch.float64)
        self.counts = torch.zeros(self.num_tasks, dtype=torch.float64)

    @torch.no_grad()
    def add(
        self, values: torch.Tensor, task_ids: torch.Tensor, weights: torch.Tensor | None
    ) -> None:
        """values (K, G, B) for samples with task_ids (G, B) and optional weights (G, B)."""
        flat_ids = task_ids.reshape(-1)
        flat = values.reshape(len(self.names), -1).double()
        w = torch.ones_like(flat[0]) if weights is None else weights.reshape(-1).double()
        self.sums.index_add_(1, flat_ids, flat * w)
        self.counts.index_add_(0, flat_ids, w)

    def means(self) -> dict[str, list[float]]:
        avg = self.sums / self.counts.clamp_min(1e-12)
        avg[:, self.counts == 0] = float("nan")
        return {name: avg[k].tolist() for k, name in enumerate(self.names)}


class MultiTaskSAC:
    """Twin-critic SAC with automatic temperature for N tasks sharing one update step."""

    def __init__(
        self,
        policy: TaskPolicy,
        critic: TwinCritic,
        num_tasks: int,
        action_dim: int,
        config: SACConfig,
        kl_coeff: torch.Tensor | None = None,
    ) -> None:
        self.policy = policy
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.num_tasks = num_tasks
        self.config = config
        self.target_entropy = (
            -float(action_dim) if config.target_entropy is None else config.target_entropy
        )
        temperatures = num_tasks if config.per_task_temperature else 1
        self.log_alpha = nn.Parameter(torch.zeros(temperatures))
        self.policy_params = list(policy.parameters())
        # per-task members (separate networks, per-task temperatures) can skip a step
        def members(per_task: bool) -> int | None:
            return num_tasks if per_task else None

        self.policy_optimizer = EnsembleAdam(self.policy_params, config.lr,
                                             members(policy.per_task_groups))
        self.critic_optimizer = EnsembleAdam(critic.parameters(), config.lr,
                                             members(critic.groups == num_tasks))
        self.alpha_optimizer = EnsembleAdam([self.log_alpha], config.lr,
                                            members(config.per_task_temperature))
        self._critic_params = list(critic.parameters())
        self._target_params = list(self.target_critic.parameters())
        #: per-member slices for Polyak updates of some tasks only (separate critics)
        self._critic_members, self._member_task = member_views(self._critic_params, num_tasks)
        self._target_members, _ = member_views(self._target_params, num_tasks)
        #: (N, N) DnC penalty weights; row i weights policy i's KL towards every other policy
        self.kl_coeff = None if kl_coeff is None else kl_coeff.fill_diagonal_(0.0)
        self.stats = TaskStatistics(
            STAT_NAMES + (("PolicyKL", "PolicyKLPenalty") if self.kl_coeff is not None else ()),
            num_tasks,
        )

    def temperature_index(self, task_ids: torch.Tensor) -> torch.Tensor:
        return task_ids if self.config.per_task_temperature else torch.zeros_like(task_ids)

    def alpha(self) -> torch.Tensor:
        """Current temperature of every task, (N,)."""
        return self.log_alpha.detach().exp().expand(self.num_tasks)

    def check_finite(self, epoch: int) -> None:
        """Stop a diverged run with a message that names what broke (a loss first, then a
        parameter), before the epoch's checkpoint is written."""
        seen = self.stats.counts > 0
        bad = ~torch.isfinite(self.stats.sums[:, seen])
        if bad.any():
            k, j = (int(x) for x in bad.nonzero()[0])
            task = int(seen.nonzero()[j])
            raise FloatingPointError(
                f"{self.stats.names[k]} of task {task} is not finite in epoch {epoch}"
            )
        parts = {"policy": self.policy, "critic": self.critic}
        for name, module in parts.items():
            for pname, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise FloatingPointError(
                        f"{name} parameter {pname} is not finite in epoch {epoch}"
                    )
        if not torch.isfinite(self.log_alpha).all():
            raise FloatingPointError(f"the temperature is not finite in epoch {epoch}")

    def state_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.policy.load_state_dict(state["policy"])  # type: ignore[arg-type]
        self.critic.load_state_dict(state["critic"])  # type: ignore[arg-type]
        self.target_critic.load_state_dict(state["target_critic"])  # type: ignore[arg-type]
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])  # type: ignore[arg-type]
        for name in ("policy_optimizer", "critic_optimizer", "alpha_optimizer"):
            getattr(self, name).load_state_dict(state[name])

    def soft_update_targets(self, tasks: np.ndarray | None = None) -> None:
        """Polyak update of the target critics of `tasks` (bool (N,); None: all)."""
        tau = self.config.target_update_tau
        if tasks is None or tasks.all():
            torch._foreach_lerp_(self._target_params, self._critic_params, tau)
            return
        if self.critic.groups != self.num_tasks:
            raise ValueError("per-task target updates need separate per-task critics")
        chosen = np.flatnonzero(tasks[self._member_task]).tolist()
        if chosen:
            torch._foreach_lerp_([self._target_members[i] for i in chosen],
                                 [self._critic_members[i] for i in chosen], tau)

    def update(self, batch: TransitionBatch, kl_obs: torch.Tensor | None = None,
               tasks: np.ndarray | None = None) -> None:
        """One gradient step of critics, actor and temperature on `batch` for the tasks in
        `tasks` (bool (N,); None: every task). A task left out gets no Adam step, no Polyak
        update and no statistics, exactly as if it had not been in the batch (its samples still
        go through the batched passes: members never interact).

        The gradients are computed by hand (taped forward passes, `backward` methods): the same
        values autograd gives (tests/test_update_gradients.py checks them against autograd on
        every architecture and option), without autograd's graph bookkeeping, which cost 15-20%
        of an update at the paper's sizes."""
        cfg = self.config
        ids = batch.task_ids
        alpha_ids = self.temperature_index(ids)
        alpha = self.log_alpha.detach().exp()[alpha_ids]
        # d(loss)/d(per-sample term): each group's (weighted) mean, summed over groups
        scale = per_sample_scale(batch.weights, ids.shape)

        with torch.no_grad():
            # one policy pass serves the critic target (next_obs) and the actor loss (obs): the
            # policy is stepped last, so both see the same parameters
            b = ids.shape[1]
            means, log_stds, policy_tape = self.policy.forward_taped(
                torch.cat([batch.obs, batch.next_obs], dim=1), ids.repeat(1, 2))
            next_draw = tanh_gaussian_draw(means[:, b:], log_stds[:, b:])
            next_q = self.target_critic(batch.next_obs, next_draw.action, ids).min(0).values
            soft_next = next_q - alpha * next_draw.log_prob
            q_target = cfg.reward_scale * batch.rewards + cfg.discount * (
                1.0 - batch.terminals
            ) * soft_next

            # critics: loss sum_k reduce((Q_k - y)^2)
            q, critic_tape = self.critic.forward_taped(batch.obs, batch.actions, ids)
            q_diff = q - q_target
            _, grads = self.critic.backward(critic_tape, 2.0 * scale * q_diff,
                                            param_grads=True, action_grad=False)
            _set_grads(self._critic_params, grads)
            self.critic_optimizer.step(tasks)

            # actor (with the fresh critics): loss reduce(alpha * log_pi - min_k Q_k(s, a~pi))
            log_std = log_stds[:, :b]
            draw = tanh_gaussian_draw(means[:, :b], log_std)
            q_new, q_new_tape = self.critic.forward_taped(batch.obs, draw.action, ids)
            q_min, twin = q_new.min(0)
            policy_per_sample = alpha * draw.log_prob - q_min
            grad_q = torch.zeros_like(q_new).scatter_(0, twin.unsqueeze(0), -scale.unsqueeze(0))
            grad_action, _ = self.critic.backward(q_new_tape, grad_q, param_grads=False,
                                                  action_grad=True)
            assert grad_action is not None
            grads = self.policy.backward(policy_tape.rows(b),
                                         *draw.backward(grad_action, alpha * scale))
            kl_stats: list[torch.Tensor] = []
            if self.kl_coeff is not None and kl_obs is not None:
                kl, penalty, kl_grads = self._kl_penalty(kl_obs)
                grads = [g + k for g, k in zip(grads, kl_grads, strict=True)]
                kl_stats = [kl, penalty]
            _set_grads(self.policy_params, grads)

            # temperature: loss reduce(-coef * (log_pi + target entropy)), coef = log_alpha or
            # alpha of each sample's task
            entropy_gap = draw.log_prob + self.target_entropy
            if cfg.temperature_loss == "alpha":
                coef, coef_grad = alpha, alpha  # d alpha / d log_alpha = alpha
            else:
                coef, coef_grad = self.log_alpha[alpha_ids], torch.ones_like(alpha)
            alpha_per_sample = -coef * entropy_gap
            grad_coef = -scale * entropy_gap * coef_grad
            self.log_alpha.grad = torch.zeros_like(self.log_alpha).index_add_(
                0, alpha_ids.reshape(-1), grad_coef.reshape(-1))
            self.policy_optimizer.step(tasks)
            self.alpha_optimizer.step(tasks)
            self.soft_update_targets(tasks)
            values = [
                q_diff[0].square(),
                q_diff[1].square(),
                q[0],
                q[1],
                q_target,
                policy_per_sample,
                draw.log_prob,
                gaussian_entropy(log_std),
                alpha_per_sample,
                alpha,
            ]
            values += [per_task[ids] for per_task in kl_stats]  # (N,) -> each sample's task
            weights = batch.weights
            if tasks is not None and not tasks.all():
                stepped = torch.from_numpy(tasks)[ids].float()
                weights = stepped if weights is None else weights * stepped
            self.stats.add(torch.stack(values), ids, weights)

    def _kl_penalty(self, obs: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """DnC penalty: for policy i, sum_j beta_ij * mean KL(pi_j || pi_i) of the pre-tanh
        Gaussians (per action dimension, averaged over dimensions and the batch). pi_j is held
        fixed: with stacked parameters its gradient would otherwise be stepped too.

        Returns each policy's mean KL to the others, its penalty, and the penalty's gradient."""
        n = self.num_tasks
        ids = torch.arange(n).unsqueeze(1).expand(n, obs.shape[0])
        mean, log_std, tape = self.policy.forward_taped(obs.unsqueeze(0).expand(n, *obs.shape),
                                                        ids)
        p = (mean.unsqueeze(0), log_std.unsqueeze(0))  # pi_j along axis 1
        q = (mean.unsqueeze(1), log_std.unsqueeze(1))  # pi_i along axis 0
        kl = diagonal_gaussian_kl(*p, *q).mean(dim=(-1, -2))  # (N_i, N_j): KL(pi_j || pi_i)
        assert self.kl_coeff is not None
        penalty = (self.kl_coeff * kl).sum(1)
        weight = (self.kl_coeff / mean[0].numel()).view(n, n, 1, 1)
        grad_mean, grad_log_std = diagonal_gaussian_kl_grad_q(*p, *q)
        grads = self.policy.backward(tape, (weight * grad_mean).sum(1),
                                     (weight * grad_log_std).sum(1))
        return kl.sum(1) / max(n - 1, 1), penalty, grads


def per_sample_scale(weights: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """d(loss)/d(term) of a loss that sums, over groups, each group's weighted mean of its B
    per-sample terms (the plain mean without weights): w / max(sum w, 1) or 1 / B."""
    if weights is None:
        return torch.full(shape, 1.0 / shape[-1])
    return weights / weights.sum(-1, keepdim=True).clamp_min(1.0)


def _set_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g
