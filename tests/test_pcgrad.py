"""PCGrad: the projection on hand-made gradients, the merge (mean where every task reaches, sum on
a task's own head and temperature), the per-task losses it sees (each task's mean), and the flag
through the command line."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import run
from learning.algorithms import sac_losses
from learning.algorithms.pcgrad import PCGrad, project_conflicts, sac_reach, task_reach
from learning.algorithms.sac import Extensions, MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.distributions import tanh_gaussian_log_prob
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

N, OBS, ACT, B = 3, 4, 2, 9


def test_two_conflicting_gradients_are_projected_off_each_other() -> None:
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    out = project_conflicts(grads)
    # g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + (-1, 1) / 2; g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    assert (out[0] @ grads[1]).abs() < 1e-7 and (out[1] @ grads[0]).abs() < 1e-7


def test_agreeing_gradients_and_a_zero_gradient_are_left_alone() -> None:
    grads = torch.tensor([[1.0, 2.0], [0.5, 0.1], [0.0, 0.0]])
    torch.testing.assert_close(project_conflicts(grads), grads)


def test_three_tasks_follow_the_random_order_against_the_original_gradients() -> None:
    torch.manual_seed(3)
    grads = torch.randn(3, 5)
    torch.manual_seed(7)
    out = project_conflicts(grads)
    torch.manual_seed(7)
    expected = grads.clone()
    for i in range(3):
        for j in torch.randperm(3).tolist():
            if j != i:
                dot = float(expected[i] @ grads[j])
                if dot < 0:
                    expected[i] = expected[i] - dot / float(grads[j] @ grads[j]) * grads[j]
    torch.testing.assert_close(out, expected)
    assert not torch.equal(out, grads)  # the case has conflicts


def test_reach_masks_of_the_architectures() -> None:
    head = TaskPolicy(Architecture.MULTIHEAD, N, OBS, ACT, [5])
    masks = task_reach(head, N)
    trunk_w, trunk_b, head_w, head_b = masks
    assert trunk_w.all() and trunk_b.all()
    for task in range(N):  # head columns of task k: its (mean, log_std) block of width 2A
        cols = head_w[task, 0, 0].nonzero().flatten().tolist()
        assert cols == list(range(2 * ACT * task, 2 * ACT * (task + 1)))
        assert torch.equal(head_b[task, 0, 0], head_w[task, 0, 0])
    separate = task_reach(TwinCritic(Architecture.SEPARATE, N, OBS, ACT, [5]), N)
    for mask in separate:  # 2N members: Q1 of tasks 0..N-1, then Q2
        for member in range(2 * N):
            assert mask[member % N, member].all()
            assert not mask[(member + 1) % N, member].any()


def test_the_merge_averages_the_trunk_and_sums_each_head() -> None:
    policy = TaskPolicy(Architecture.MULTIHEAD, N, OBS, ACT, [5])
    params = list(policy.parameters())
    reach = {"actor": task_reach(policy, N)}
    torch.manual_seed(0)
    # positive gradients never conflict: the merge alone is seen
    per_task = [[torch.rand_like(p) * m.float() + 0.0 for p, m in zip(params, masks_of(reach, i),
                                                                      strict=True)]
                for i in range(N)]
    merged = PCGrad(reach)("actor", per_task, params)
    trunk_mean = sum(per_task[i][0] for i in range(N)) / N
    torch.testing.assert_close(merged[0], trunk_mean)
    head_sum = sum(per_task[i][2] for i in range(N))  # each column from one task only
    torch.testing.assert_close(merged[2], head_sum)
    # a task with no gradient at all (no sample) takes no part: the trunk is the mean of two
    per_task[1] = [torch.zeros_like(p) for p in params]
    merged = PCGrad(reach)("actor", per_task, params)
    torch.testing.assert_close(merged[0], (per_task[0][0] + per_task[2][0]) / 2)


def masks_of(reach: dict[str, list[torch.Tensor]], task: int) -> list[torch.Tensor]:
    return [m[task] for m in reach["actor"]]


def test_per_task_mean_losses() -> None:
    """Each task's mean over its own samples; a task with one sample keeps it, a task with
    none gets 0; with weights, the weighted mean over the kept ones."""
    per_sample = torch.tensor([[1.0, 2.0, 3.0, 5.0, 7.0]])
    ids = torch.tensor([[0, 1, 0, 1, 3]])
    torch.testing.assert_close(
        sac_losses.per_task_losses(per_sample, None, ids, 4, "mean"),
        torch.tensor([2.0, 3.5, 0.0, 7.0]))
    weights = torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(
        sac_losses.per_task_losses(per_sample, weights, ids, 4, "mean"),
        torch.tensor([2.0, 5.0, 0.0, 7.0]))
    groups = torch.tensor([[1.0, 2.0], [4.0, 8.0]])  # two groups of two
    torch.testing.assert_close(
        sac_losses.per_task_losses(groups, None, torch.tensor([[0, 0], [1, 2]]), 3, "mean"),
        torch.tensor([1.5, 4.0, 8.0]))


def test_the_update_with_pcgrad_steps_the_surgery_of_each_tasks_mean_loss() -> None:
    """mtsac's critic stage, by hand: each task's mean squared error over its own samples,
    differentiated apart, flattened, projected and merged, is the gradient the critic gets."""
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.MULTIHEAD, N, OBS, ACT, [6])
    critic = TwinCritic(Architecture.MULTIHEAD, N, OBS, ACT, [6])
    reach = sac_reach(policy, critic, N, True)
    sac = MultiTaskSAC(policy, critic, N, ACT, SACConfig(temperature_loss="alpha"),
                       extensions=Extensions(gradient_transform=PCGrad(reach),
                                             transform_stages=("critic", "actor"),
                                             per_task_reduction="mean"))
    reference = MultiTaskSAC(*_copies(policy, critic), N, ACT, SACConfig(temperature_loss="alpha"),
                             update_path="autograd")
    ids = torch.tensor([[0, 1, 2, 0, 1, 2, 0, 0, 1]])
    batch = TransitionBatch(obs=torch.randn(1, B, OBS), actions=torch.rand(1, B, ACT),
                            rewards=torch.randn(1, B), next_obs=torch.randn(1, B, OBS),
                            terminals=torch.zeros(1, B), task_ids=ids)
    torch.manual_seed(5)
    sac.update(batch)
    # the critic target as the update computes it (same noise: the target draw comes first)
    torch.manual_seed(5)
    with torch.no_grad():
        mean, log_std = reference.policy(batch.next_obs, ids)
        eps = torch.randn_like(mean)
        pre = mean + log_std.exp() * eps
        log_pi = tanh_gaussian_log_prob(mean, log_std, pre)
        next_q = reference.target_critic(batch.next_obs, torch.tanh(pre), ids).min(0).values
        y = batch.rewards + 0.99 * (next_q - log_pi)  # alpha = 1 before the first step
    torch.manual_seed(123)
    params = list(reference.critic.parameters())
    flat = []
    for task in range(N):
        q = reference.critic(batch.obs, batch.actions, ids)
        mine = (ids == task).float()
        loss = (((q - y).square().sum(0)) * mine).sum() / mine.sum()
        flat.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    # the projection's random order is the global RNG's: replay the update's draws
    torch.manual_seed(5)
    with torch.no_grad():
        torch.randn_like(mean)  # the update's target draw
    projected = project_conflicts(torch.stack(flat))
    start = 0
    for p, mask, got in zip(params, reach["critic"], sac.critic.parameters(), strict=True):
        rows = projected[:, start:start + p.numel()].view(N, *p.shape)
        expected = rows.sum(0) / mask.float().sum(0)
        torch.testing.assert_close(got.grad, expected, rtol=1e-5, atol=1e-7)
        start += p.numel()


def _copies(policy: TaskPolicy, critic: TwinCritic) -> tuple[TaskPolicy, TwinCritic]:
    return copy.deepcopy(policy), copy.deepcopy(critic)


@pytest.mark.parametrize("skip_alpha", [True, False])
def test_use_pc_grad_through_the_cli(tiny_flags: list[str], tmp_path: Path,
                                     skip_alpha: bool) -> None:
    log_dir = tmp_path / "pc"
    argv = ["mtsac", *tiny_flags, "--use_pc_grad", "--skip_alpha_pc_grad", str(skip_alpha),
            "--log_dir", str(log_dir)]
    assert run.main(argv) == 0
    with open(log_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert np.isfinite(float(rows[-1]["Train/LocalPolicy0/Qf1Loss"]))
    assert run.main(["qmp_dnc", *tiny_flags, "--use_pc_grad", "--log_dir",
                     str(tmp_path / "never")]) == 2
