"""PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") as a gradient transform.

Each task's gradient is projected off every other task's gradient it conflicts with (negative
inner product), the others visited in a random order; the projected gradients are then merged:
averaged on parameters every task reaches (a shared trunk), summed on parameters one task alone
reaches (its own head, its own temperature). A task whose gradient is zero everywhere (no sample
in the batch) takes no part. The original applies it to the SAC family (`--use_pc_grad`) on the
critics and the policy, and on the temperatures too with `--skip_alpha_pc_grad False`. Each
task's loss is the mean over its own samples (`Extensions(per_task_reduction="mean")`).
"""

from __future__ import annotations

import torch

from learning.nn.heads import Architecture


def project_conflicts(grads: torch.Tensor) -> torch.Tensor:
    """PCGrad's surgery on flattened per-task gradients (T, P): row i projected off each other
    original row j (random order) whose inner product with it is negative."""
    projected = grads.clone()
    t = grads.shape[0]
    norms_sq = grads.square().sum(1)
    for i in range(t):
        for j in torch.randperm(t).tolist():
            if j == i or norms_sq[j] == 0:
                continue
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / norms_sq[j] * grads[j]
    return projected


def task_reach(module: torch.nn.Module, num_tasks: int) -> list[torch.Tensor]:
    """For each parameter of a `TaskPolicy` or `TwinCritic` (in `parameters()` order), a bool
    (N, *shape) mask of the entries task i's loss can reach: its own member of separate networks,
    the trunk and its own head's columns of a multi-head network, everything of a shared one."""
    params = list(module.parameters())
    architecture = module.architecture  # type: ignore[attr-defined]
    masks = []
    for p in params:
        mask = torch.ones(num_tasks, *p.shape, dtype=torch.bool)
        if architecture is Architecture.SEPARATE:
            member_task = torch.arange(p.shape[0]) % num_tasks
            mask = member_task.view(1, -1) == torch.arange(num_tasks).view(-1, 1)
            mask = mask.view(num_tasks, p.shape[0], *([1] * (p.dim() - 1))).expand(
                num_tasks, *p.shape).clone()
        masks.append(mask)
    if architecture is Architecture.MULTIHEAD:
        head = module.net.layers[-1][0]  # type: ignore[attr-defined]
        width = head.weight.shape[-1] // num_tasks
        column_task = torch.arange(head.weight.shape[-1]) // width
        own = column_task.view(1, -1) == torch.arange(num_tasks).view(-1, 1)  # (N, out)
        for k, p in enumerate(params):
            if p is head.weight or p is head.bias:
                masks[k] = own.view(num_tasks, 1, 1, -1).expand(num_tasks, *p.shape).clone()
    return masks


class PCGrad:
    """The gradient transform: `per_task` gradients in, one merged gradient per parameter out.

    `reach[stage]` holds `task_reach`'s masks of the stage's parameters (the temperature stage:
    one entry per task's temperature, or one shared by all)."""

    def __init__(self, reach: dict[str, list[torch.Tensor]]) -> None:
        self.reach = reach

    def __call__(self, stage: str, per_task: list[list[torch.Tensor]],
                 params: list[torch.Tensor]) -> list[torch.Tensor]:
        present = [i for i, grads in enumerate(per_task) if any(g.any() for g in grads)]
        if not present:
            return [torch.zeros_like(p) for p in params]
        flat = torch.stack([torch.cat([g.reshape(-1) for g in per_task[i]]) for i in present])
        projected = project_conflicts(flat)
        merged, start = [], 0
        for k, p in enumerate(params):
            n = p.numel()
            rows = projected[:, start:start + n].view(len(present), *p.shape)
            reach = self.reach[stage][k][present].to(rows.dtype)
            merged.append(rows.sum(0) / reach.sum(0).clamp_min(1.0))
            start += n
        return merged


def sac_reach(policy: torch.nn.Module, critic: torch.nn.Module, num_tasks: int,
              per_task_temperature: bool) -> dict[str, list[torch.Tensor]]:
    """The masks `PCGrad` needs for the three stages of a SAC update."""
    temperatures = (torch.eye(num_tasks, dtype=torch.bool) if per_task_temperature
                    else torch.ones(num_tasks, 1, dtype=torch.bool))
    return {"critic": task_reach(critic, num_tasks), "actor": task_reach(policy, num_tasks),
            "temperature": [temperatures]}
