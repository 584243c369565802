"""The three architectures of the paper and the per-task head choice they share.

Batches are laid out as (G, B, ...) "groups": with the `separate` architecture G = N and group g is
task g's data for task g's network (ensemble member g); with `multihead` and `shared` there is one
network, G = 1, and `task_ids` (G, B) picks each sample's head (multihead) or is ignored (shared).

* separate:  N policies / 2N critics = ensembles of N / 2N members, one head each;
* multihead: one trunk with N task heads (policy: (mean, log_std) per task; critic: a Q per task);
* shared:    one network, one head (the task one-hot, if any, is part of the input).
"""

from __future__ import annotations

from enum import StrEnum

import torch


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
