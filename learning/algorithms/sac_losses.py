"""The losses of multi-task SAC, written once with autograd: the definition of the method.

Every loss works on a (G, B) batch of groups (see `learning.nn.heads`) and reduces its per-sample
terms with `reduce_loss`: the sum over groups of each group's (weighted) mean. With per-task
networks that sum gives each task the gradient of its own loss; with one shared network it is the
mean over the mixed batch, as in the original's MTSAC. UDS enters only through the batch weights.

Each loss is `reduce_loss` of its per-sample terms. The order of one update (as garage's SAC):
critics on `critic_terms` towards `soft_target`; the actor on `actor_terms` (with the freshly
stepped critics) plus the DnC term `dnc_kl_loss` when it is on; the temperatures on
`temperature_terms`; then the Polyak update of the target critics.
`MultiTaskSAC.update` computes the same gradients by hand when it can (see its `update_path`).
"""

from __future__ import annotations

from typing import Literal

import torch

from learning.nn.distributions import diagonal_gaussian_kl


def reduce_loss(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Sum over groups of each group's mean over its B samples (last axis); with weights, the
    weighted mean sum(w x) / max(sum w, 1) (a group with no kept sample adds 0)."""
    if weights is None:
        return per_sample.mean(-1).sum()
    return ((per_sample * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)).sum()


def per_sample_scale(weights: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """d(reduce_loss)/d(term) of each per-sample term: w / max(sum w, 1) per group, or 1 / B."""
    if weights is None:
        return torch.full(shape, 1.0 / shape[-1])
    return weights / weights.sum(-1, keepdim=True).clamp_min(1.0)


def per_task_losses(per_sample: torch.Tensor, weights: torch.Tensor | None,
                    task_ids: torch.Tensor, num_tasks: int,
                    reduction: Literal["share", "mean"] = "share") -> torch.Tensor:
    """Each task's loss (N,), for a gradient transform: with "share", its samples' share of
    `reduce_loss` (the N losses sum to it); with "mean", the (weighted) mean over its own
    samples (0 for a task without any). per_sample and task_ids (G, B)."""
    ids = task_ids.reshape(-1)
    if reduction == "share":
        terms = per_sample * per_sample_scale(weights, task_ids.shape)
        return torch.zeros(num_tasks, dtype=terms.dtype).index_add(0, ids, terms.reshape(-1))
    w = torch.ones_like(per_sample) if weights is None else weights
    totals = torch.zeros(num_tasks, dtype=per_sample.dtype).index_add(
        0, ids, (w * per_sample).reshape(-1))
    counts = torch.zeros(num_tasks, dtype=per_sample.dtype).index_add(0, ids, w.reshape(-1))
    return torch.where(counts > 0, totals / counts.clamp_min(1e-12), torch.zeros_like(totals))


def soft_target(rewards: torch.Tensor, terminals: torch.Tensor, next_q_min: torch.Tensor,
                next_log_pi: torch.Tensor, alpha: torch.Tensor, *, discount: float,
                reward_scale: float) -> torch.Tensor:
    """The critics' regression target y = scale r + gamma (1 - done) (min_k Q'_k(s', a') -
    alpha log pi(a' | s')), a' ~ pi(s'), Q' the target critics (no gradient flows into it)."""
    return reward_scale * rewards + discount * (1.0 - terminals) * (
        next_q_min - alpha * next_log_pi)


def critic_terms(q: torch.Tensor, q_target: torch.Tensor) -> torch.Tensor:
    """Per-sample critic loss, both twins' squared error summed: q (2, G, B), q_target (G, B)."""
    return (q - q_target).square().sum(0)


def actor_terms(log_pi: torch.Tensor, q_min: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Per-sample actor loss alpha log pi(a | s) - min_k Q_k(s, a), a ~ pi(s) reparameterised."""
    return alpha * log_pi - q_min


def temperature_terms(coef: torch.Tensor, log_pi: torch.Tensor, target_entropy: float
                      ) -> torch.Tensor:
    """Per-sample temperature loss -coef (log pi + target entropy), coef = log alpha (the DnC
    family) or alpha (the SAC family) of each sample's task; log pi is held fixed."""
    return -coef * (log_pi.detach() + target_entropy)


def dnc_kl(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """(N_i, N_j) mean KL(pi_j || pi_i) of the pre-tanh Gaussians of every policy pair on the
    same observations (per action dimension, averaged over dimensions and observations), pi_j
    held fixed. mean, log_std (N, B, A): policy i's outputs in row i."""
    fixed = (mean.detach().unsqueeze(0), log_std.detach().unsqueeze(0))  # pi_j along axis 1
    moving = (mean.unsqueeze(1), log_std.unsqueeze(1))  # pi_i along axis 0
    return diagonal_gaussian_kl(*fixed, *moving).mean(dim=(-1, -2))


def representation_distance(hidden: torch.Tensor) -> torch.Tensor:
    """(N_i, N_j) mean squared difference between policy i's and policy j's last hidden layers
    on the same observations (averaged over units and observations), policy j held fixed:
    DnC's penalty with `--regularize_representation`. hidden (N, B, H), policy i in row i."""
    return (hidden.unsqueeze(1) - hidden.detach().unsqueeze(0)).square().mean(dim=(-1, -2))


def dnc_kl_loss(kl: torch.Tensor, kl_coeff: torch.Tensor) -> torch.Tensor:
    """DnC's penalty sum_ij beta_ij D_ij (the diagonal of beta is zero); D is the KL of
    `dnc_kl` or the distance of `representation_distance`."""
    return (kl_coeff * kl).sum()
