"""The tanh-squashed diagonal Gaussian every policy of the project acts with.

One consistent distribution per head (the original's multi-head policy squashed twice; see
README, "Fixed bugs"). Log-probabilities use the tanh correction log(1 - a^2 + 1e-6) as garage did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
TANH_EPS = 1e-6
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def split_mean_log_std(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a head's output (..., 2A) into the pre-tanh mean and the clamped log-std."""
    mean, log_std = params.chunk(2, dim=-1)
    return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


@dataclass
class TanhGaussianDraw:
    """A reparameterised sample a = tanh(mean + std * eps), its log-probability (summed over the
    last axis), and what `backward` needs to differentiate both with respect to mean and log-std
    (eps held fixed)."""

    action: torch.Tensor
    log_prob: torch.Tensor
    eps: torch.Tensor
    std: torch.Tensor

    def backward(self, grad_action: torch.Tensor, grad_log_prob: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of mean and log-std from those of the action (..., A) and the
        log-probability (...)."""
        one_minus_a2 = 1.0 - self.action.square()
        grad_log_prob = grad_log_prob.unsqueeze(-1)
        # d log_prob / d pre_tanh = -d/du log(1 - tanh(u)^2 + TANH_EPS) = 2a(1 - a^2) / (...)
        grad_pre = (grad_action + grad_log_prob * 2.0 * self.action / (one_minus_a2 + TANH_EPS)
                    ) * one_minus_a2
        # pre_tanh = mean + exp(log_std) * eps; log_prob also holds -log_std
        return grad_pre, grad_pre * self.std * self.eps - grad_log_prob


def tanh_gaussian_draw(mean: torch.Tensor, log_std: torch.Tensor) -> TanhGaussianDraw:
    eps = torch.randn_like(mean)
    std = log_std.exp()
    action = torch.tanh(mean + std * eps)
    log_prob = _squashed_log_prob(-0.5 * eps.square() - log_std - _HALF_LOG_2PI, action)
    return TanhGaussianDraw(action, log_prob, eps, std)


def tanh_gaussian_sample(
    mean: torch.Tensor, log_std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised sample a = tanh(mean + std * eps) and its log-probability (summed over
    the last axis)."""
    draw = tanh_gaussian_draw(mean, log_std)
    return draw.action, draw.log_prob


def tanh_gaussian_action(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """A sample a = tanh(mean + std * eps) without its log-probability (for acting)."""
    return torch.tanh(torch.randn_like(mean).mul_(log_std.exp()).add_(mean))


def tanh_gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor
) -> torch.Tensor:
    """Log-probability of a = tanh(pre_tanh) under the squashed Gaussian (summed over dims)."""
    std = log_std.exp()
    gaussian = -0.5 * ((pre_tanh - mean) / std).square() - log_std - _HALF_LOG_2PI
    return _squashed_log_prob(gaussian, torch.tanh(pre_tanh))


def _squashed_log_prob(gaussian_log_prob: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Change of variables through tanh: subtract log|d tanh/du| = log(1 - a^2) per dimension."""
    return (gaussian_log_prob - torch.log(1.0 - action.square() + TANH_EPS)).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of the pre-tanh Gaussian (what garage reported as `Entropy`)."""
    return (log_std + 0.5 + _HALF_LOG_2PI).sum(-1)


def diagonal_gaussian_kl(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """Per-dimension KL(p || q) of diagonal Gaussians (not summed)."""
    var_p = (2.0 * log_std_p).exp()
    var_q = (2.0 * log_std_q).exp()
    return log_std_q - log_std_p + (var_p + (mean_p - mean_q).square()) / (2.0 * var_q) - 0.5


def diagonal_gaussian_kl_grad_q(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the per-dimension KL(p || q) with respect to q's mean and log-std."""
    var_p = (2.0 * log_std_p).exp()
    var_q = (2.0 * log_std_q).exp()
    diff = mean_q - mean_p
    return diff / var_q, 1.0 - (var_p + diff.square()) / var_q
