"""Extending the SAC update from outside the package: an extra loss term and a gradient transform
that sees each task's gradient, on the autograd path the update then takes; the per-task
gradients are those of each task's own share of the loss; the hand-written path is chosen only
where it covers the update; an activation other than ReLU is honoured (and trains with autograd).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from learning.algorithms import sac_losses
from learning.algorithms.sac import Extensions, LossContext, LossTerm, MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.distributions import tanh_gaussian_log_prob
from learning.nn.heads import Architecture
from learning.nn.networks import EnsembleMLP
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

N, OBS, ACT, B = 3, 4, 2, 6


def build(arch: Architecture = Architecture.MULTIHEAD, **kwargs: object) -> MultiTaskSAC:
    torch.manual_seed(0)
    policy = TaskPolicy(arch, N, OBS, ACT, [8])
    critic = TwinCritic(arch, N, OBS, ACT, [8])
    return MultiTaskSAC(policy, critic, N, ACT, SACConfig(), **kwargs)  # type: ignore[arg-type]


def batch(groups: int = 1) -> TransitionBatch:
    torch.manual_seed(1)
    ids = (torch.arange(N).unsqueeze(1).expand(N, B) if groups == N
           else torch.tensor([[0, 1, 2, 0, 1, 0]]))
    return TransitionBatch(obs=torch.randn(groups, B, OBS), actions=torch.rand(groups, B, ACT),
                           rewards=torch.randn(groups, B), next_obs=torch.randn(groups, B, OBS),
                           terminals=torch.zeros(groups, B), task_ids=ids)


def grads(sac: MultiTaskSAC) -> list[torch.Tensor]:
    return [p.grad.clone() for p in [*sac.critic.parameters(), *sac.policy.parameters(),
                                     sac.log_alpha]]


def test_the_hand_path_is_taken_only_where_it_covers_the_update() -> None:
    assert build().hand_path and not build(update_path="autograd").hand_path
    term = LossTerm("actor", lambda ctx: ctx.log_pi.square().mean())
    assert not build(extensions=Extensions(loss_terms=[term])).hand_path
    with pytest.raises(ValueError, match="does not cover extra loss terms"):
        build(update_path="hand", extensions=Extensions(loss_terms=[term]))
    with pytest.raises(ValueError, match="does not cover a gradient transform"):
        build(update_path="hand",
              extensions=Extensions(gradient_transform=lambda stage, g, p: g[0]))
    with pytest.raises(ValueError, match="update_path must be one of"):
        build(update_path="fast")


def test_an_extra_loss_term_adds_exactly_its_gradient() -> None:
    """A term on the actor stage (a penalty on the pre-tanh means) and one on the critic stage
    (an L2 penalty on the critic's weights): each parameter's gradient is the plain update's
    plus the term's own autograd gradient, and only the stage's parameters receive it."""
    data = batch()
    plain = build(update_path="autograd")
    mean_penalty = LossTerm("actor", lambda ctx: 0.3 * ctx.mean.square().mean(), "mean_l2")
    weight_penalty = LossTerm("critic", lambda ctx: 0.01 * sum(
        p.square().sum() for p in ctx.sac.critic.parameters()), "critic_l2")
    extended = build(extensions=Extensions(loss_terms=[mean_penalty, weight_penalty]))
    assert not extended.hand_path
    reference = copy.deepcopy(plain)
    for sac in (plain, extended):
        torch.manual_seed(5)
        sac.update(data)
    # the expected extras, computed on the networks as they were at each stage
    torch.manual_seed(5)
    critic_params = list(reference.critic.parameters())
    extra_critic = torch.autograd.grad(
        0.01 * sum(p.square().sum() for p in critic_params), critic_params)
    got_critic = [p.grad for p in extended.critic.parameters()]
    want_critic = [p.grad for p in plain.critic.parameters()]
    for got, want, extra in zip(got_critic, want_critic, extra_critic, strict=True):
        torch.testing.assert_close(got, want + extra, rtol=1e-5, atol=1e-6)
    # actor: the critic steps differ, so compare with the term's gradient on the extended
    # policy's pre-step parameters (the policy has not moved before its own stage)
    policy = reference.policy
    mean, _ = policy(data.obs, data.task_ids)
    extra_policy = torch.autograd.grad(0.3 * mean.square().mean(), list(policy.parameters()))
    assert any(e.abs().max() > 0 for e in extra_policy)
    # the plain actor gradient with the extended run's stepped critic
    check = copy.deepcopy(reference)
    check.critic.load_state_dict(extended.critic.state_dict())
    check.hand_path = False
    torch.manual_seed(5)
    _actor_only(check, data)
    for got, want, extra in zip([p.grad for p in extended.policy.parameters()],
                                [p.grad for p in check.policy.parameters()], extra_policy,
                                strict=True):
        torch.testing.assert_close(got, want + extra, rtol=1e-5, atol=1e-6)


def _actor_only(sac: MultiTaskSAC, data: TransitionBatch) -> None:
    """The actor gradient of `sac` on `data` with the same noise order as `update` (the target
    draw first)."""
    with torch.no_grad():
        next_mean, next_log_std = sac.policy(data.next_obs, data.task_ids)
        torch.randn_like(next_mean)
    mean, log_std = sac.policy(data.obs, data.task_ids)
    eps = torch.randn_like(mean)
    pre = mean + log_std.exp() * eps
    action = torch.tanh(pre)
    log_pi = tanh_gaussian_log_prob(mean, log_std, pre)
    alpha = sac.log_alpha.detach().exp()[data.task_ids]
    q_min = sac.critic(data.obs, action, data.task_ids).min(0).values
    loss = sac_losses.reduce_loss(sac_losses.actor_terms(log_pi, q_min, alpha), None)
    params = list(sac.policy.parameters())
    for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
        p.grad = g


class Recorder:
    """A gradient transform that keeps what it was given and returns the plain sum."""

    def __init__(self) -> None:
        self.seen: dict[str, list[list[torch.Tensor]]] = {}

    def __call__(self, stage: str, per_task: list[list[torch.Tensor]],
                 params: list[torch.Tensor]) -> list[torch.Tensor]:
        self.seen[stage] = [[g.clone() for g in task] for task in per_task]
        return [sum(task[k] for task in per_task) for k in range(len(params))]


@pytest.mark.parametrize("how", ["vmap", "loop"])
def test_a_summing_transform_sees_each_tasks_own_gradient(how: str) -> None:
    """With a shared multi-head network and a mixed batch, task i's gradient is that of its
    samples' share of the loss (their terms over the whole batch size), and the sum of the
    tasks' gradients is the plain update's gradient."""
    data = batch()
    plain = build(update_path="autograd")
    recorder = Recorder()
    extended = build(extensions=Extensions(gradient_transform=recorder, per_task_grads=how))
    for sac in (plain, extended):
        torch.manual_seed(5)
        sac.update(data)
    for got, want in zip(grads(extended), grads(plain), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert sorted(recorder.seen) == ["actor", "critic", "temperature"]
    # the critic stage by hand: task i's loss is sum over its samples of (sum_k (Q_k - y)^2) / B
    reference = build(update_path="autograd")
    with torch.no_grad():
        next_mean, next_log_std = reference.policy(data.next_obs, data.task_ids)
    torch.manual_seed(5)
    eps = torch.randn_like(next_mean)
    with torch.no_grad():
        pre = next_mean + next_log_std.exp() * eps
        log_pi = tanh_gaussian_log_prob(next_mean, next_log_std, pre)
        alpha = reference.log_alpha.exp()[data.task_ids]
        next_q = reference.target_critic(data.next_obs, torch.tanh(pre), data.task_ids)
        y = data.rewards + 0.99 * (next_q.min(0).values - alpha * log_pi)
    params = list(reference.critic.parameters())
    for task in range(N):
        mine = data.task_ids == task
        q = reference.critic(data.obs, data.actions, data.task_ids)
        loss = ((q - y).square().sum(0) * mine).sum() / B
        expected = torch.autograd.grad(loss, params)
        for got, want in zip(recorder.seen["critic"][task], expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # the temperature: task i's gradient reaches only its own log-alpha
    for task in range(N):
        (log_alpha_grad,) = recorder.seen["temperature"][task]
        assert log_alpha_grad[task] != 0
        assert torch.count_nonzero(log_alpha_grad) == 1


def test_a_transform_that_changes_the_gradient_is_what_the_optimizer_steps() -> None:
    """A transform keeping task 0's gradient only (all stages): a multi-head critic then moves
    exactly as an update on task 0's samples alone would move it, and the temperatures of the
    other tasks do not move."""
    data = batch()
    only_first = build(extensions=Extensions(
        gradient_transform=lambda stage, per_task, params: per_task[0]))
    before = [p.detach().clone() for p in only_first.critic.parameters()]
    alpha_before = only_first.log_alpha.detach().clone()
    torch.manual_seed(5)
    only_first.update(data)
    head_w = only_first.critic.net.body[-1].weight
    (head_w_before,) = [b for b, p in zip(before, only_first.critic.parameters(), strict=True)
                        if p is head_w]
    # task 0's head column moved, the heads of tasks 1 and 2 did not (they got zero gradient)
    assert (head_w[..., 0] != head_w_before[..., 0]).any()
    torch.testing.assert_close(head_w[..., 1:], head_w_before[..., 1:], rtol=0, atol=0)
    assert only_first.log_alpha[0] != alpha_before[0]
    torch.testing.assert_close(only_first.log_alpha[1:], alpha_before[1:], rtol=0, atol=0)


def test_per_task_losses_split_reduce_loss_by_task() -> None:
    per_sample = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    ids = torch.tensor([[0, 1, 0, 2]])
    weights = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    plain = sac_losses.per_task_losses(per_sample, None, ids, 3)
    torch.testing.assert_close(plain, torch.tensor([1.0, 0.5, 1.0]))  # (1 + 3) / 4, 2 / 4, 4 / 4
    weighted = sac_losses.per_task_losses(per_sample, weights, ids, 3)
    torch.testing.assert_close(weighted, torch.tensor([1 / 3, 2 / 3, 4 / 3]))
    assert weighted.sum() == pytest.approx(sac_losses.reduce_loss(per_sample, weights).item())


def test_another_activation_is_honoured_and_trains_with_autograd() -> None:
    torch.manual_seed(2)
    net = EnsembleMLP(2, 3, [5, 4], 1, activation=nn.Tanh)
    x = torch.randn(2, 7, 3)
    (l1, _), (l2, _), (head, _) = net.layers
    expected = head(torch.tanh(l2(torch.tanh(l1(x)))))
    torch.testing.assert_close(net(x), expected)
    assert not net.relu
    with pytest.raises(ValueError, match="ReLU MLPs only"):
        net.forward_taped(x)
    policy = TaskPolicy(Architecture.SEPARATE, N, OBS, ACT, [8])
    policy.net = EnsembleMLP(N, OBS, [8], 2 * ACT, activation=nn.ELU)
    critic = TwinCritic(Architecture.SEPARATE, N, OBS, ACT, [8])
    sac = MultiTaskSAC(policy, critic, N, ACT, SACConfig())
    assert not sac.hand_path and "activation ELU" in (sac.hand_path_excluded() or "")
    sac.update(batch(groups=N))
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters())
    assert np.isfinite(sac.stats.means()["PolicyLoss"]).all()


def _per_task_penalty(ctx: LossContext) -> torch.Tensor:
    """(N,) terms: task i's term is (i + 1) times the mean square of its samples' means."""
    mean, ids = ctx.mean, ctx.batch.task_ids
    per_sample = mean.square().mean(-1)  # (G, B)
    weights = torch.arange(1, N + 1, dtype=per_sample.dtype)
    return weights * torch.zeros(N).index_add(0, ids.reshape(-1), per_sample.reshape(-1))


@pytest.mark.parametrize("with_transform", [False, True])
def test_a_per_task_loss_term_is_each_tasks_own(with_transform: bool) -> None:
    """A term returning (N,) per-task values: without a transform their sum is added to the
    loss; with one, task i's gradient holds its own value's gradient."""
    data = batch()
    recorder = Recorder()
    term = LossTerm("actor", _per_task_penalty, "per_task")
    extended = build(extensions=Extensions(
        loss_terms=[term], gradient_transform=recorder if with_transform else None,
        transform_stages=("actor",)))
    plain = build(update_path="autograd")
    reference = copy.deepcopy(plain)
    for sac in (plain, extended):
        torch.manual_seed(5)
        sac.update(data)
    # the critics step alike in both, so the actor gradients differ by the term's alone
    params = list(reference.policy.parameters())
    mean, _ = reference.policy(data.obs, data.task_ids)
    per_sample = mean.square().mean(-1)
    for task in range(N):
        mine = (data.task_ids == task).to(per_sample.dtype)
        own = (task + 1) * (per_sample * mine).sum()
        expected = torch.autograd.grad(own, params, retain_graph=True)
        if with_transform:  # the recorder's task gradient = its SAC share + its own term
            check = copy.deepcopy(reference)
            check.critic.load_state_dict(extended.critic.state_dict())
            torch.manual_seed(5)
            _actor_only(check, data)
            for got, sac_share, want in zip(recorder.seen["actor"][task], _actor_share(
                    check, data, task), expected, strict=True):
                torch.testing.assert_close(got, sac_share + want, rtol=1e-5, atol=1e-6)
    total = torch.autograd.grad(
        sum((t + 1) * (per_sample * (data.task_ids == t)).sum() for t in range(N)), params)
    check = copy.deepcopy(reference)
    check.critic.load_state_dict(extended.critic.state_dict())
    torch.manual_seed(5)
    _actor_only(check, data)
    for got, want, extra in zip([p.grad for p in extended.policy.parameters()],
                                [p.grad for p in check.policy.parameters()], total, strict=True):
        torch.testing.assert_close(got, want + extra, rtol=1e-5, atol=1e-6)


def _actor_share(sac: MultiTaskSAC, data: TransitionBatch, task: int) -> list[torch.Tensor]:
    """Task `task`'s share of the actor loss's gradient (its samples' terms over B), with the
    update's noise (the target draw first)."""
    torch.manual_seed(5)
    with torch.no_grad():
        next_mean, _ = sac.policy(data.next_obs, data.task_ids)
        torch.randn_like(next_mean)
    mean, log_std = sac.policy(data.obs, data.task_ids)
    pre = mean + log_std.exp() * torch.randn_like(mean)
    log_pi = tanh_gaussian_log_prob(mean, log_std, pre)
    alpha = sac.log_alpha.detach().exp()[data.task_ids]
    q_min = sac.critic(data.obs, torch.tanh(pre), data.task_ids).min(0).values
    terms = sac_losses.actor_terms(log_pi, q_min, alpha) * (data.task_ids == task)
    return list(torch.autograd.grad(terms.sum() / B, list(sac.policy.parameters())))
