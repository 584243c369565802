"""The SAC update as autograd would compute it: losses built as graphs, then `backward`.

Not used in training. It is the oracle the hand-written gradients of `MultiTaskSAC.update` are
tested against (tests/test_update_gradients.py), and the per-task reference the update benchmark
loops over (bench/update_speed.py: the original's structure, N separately built networks each
updated with autograd).
"""

from __future__ import annotations

import torch

from learning.distributions import diagonal_gaussian_kl, tanh_gaussian_sample
from learning.replay_buffer import TransitionBatch
from learning.sac import MultiTaskSAC


def reduce_loss(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Sum over groups of each group's (weighted) mean over its B samples (last axis)."""
    if weights is None:
        return per_sample.mean(-1).sum()
    return ((per_sample * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)).sum()


def autograd_update(sac: MultiTaskSAC, batch: TransitionBatch,
                    kl_obs: torch.Tensor | None = None) -> None:
    """`sac.update(batch, kl_obs)` with autograd: same losses, order, optimizers and state."""
    cfg = sac.config
    ids, weights = batch.task_ids, batch.weights
    alpha_ids = sac.temperature_index(ids)
    alpha = sac.log_alpha.detach().exp()[alpha_ids]
    with torch.no_grad():
        next_mean, next_log_std = sac.policy(batch.next_obs, ids)
        next_action, next_log_pi = tanh_gaussian_sample(next_mean, next_log_std)
        next_q = sac.target_critic(batch.next_obs, next_action, ids).min(0).values
        q_target = cfg.reward_scale * batch.rewards + cfg.discount * (
            1.0 - batch.terminals) * (next_q - alpha * next_log_pi)
    q = sac.critic(batch.obs, batch.actions, ids)
    sac.critic_optimizer.zero_grad(set_to_none=True)
    reduce_loss((q - q_target).square(), weights).backward()
    sac.critic_optimizer.step()

    mean, log_std = sac.policy(batch.obs, ids)
    action, log_pi = tanh_gaussian_sample(mean, log_std)
    q_new = sac.critic(batch.obs, action, ids).min(0).values
    loss = reduce_loss(alpha * log_pi - q_new, weights)
    if sac.kl_coeff is not None and kl_obs is not None:
        n = sac.num_tasks
        kl_ids = torch.arange(n).unsqueeze(1).expand(n, kl_obs.shape[0])
        m, s = sac.policy(kl_obs.unsqueeze(0).expand(n, *kl_obs.shape), kl_ids)
        kl = diagonal_gaussian_kl(m.detach().unsqueeze(0), s.detach().unsqueeze(0),
                                  m.unsqueeze(1), s.unsqueeze(1)).mean(dim=(-1, -2))
        loss = loss + (sac.kl_coeff * kl).sum()
    log_alpha = sac.log_alpha[alpha_ids]
    coef = log_alpha if cfg.temperature_loss == "log_alpha" else log_alpha.exp()
    loss = loss + reduce_loss(-coef * (log_pi.detach() + sac.target_entropy), weights)
    sac.policy_optimizer.zero_grad(set_to_none=True)
    sac.alpha_optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=[*sac.policy_params, sac.log_alpha])
    sac.policy_optimizer.step()
    sac.alpha_optimizer.step()
    with torch.no_grad():
        torch._foreach_lerp_(list(sac.target_critic.parameters()), list(sac.critic.parameters()),
                             cfg.target_update_tau)
