"""Exact checks of the building blocks: the tanh-Gaussian, the KL, and ensembles that must compute
what N independently built networks compute (outputs, losses and gradients)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from learning.nn.distributions import (
    TANH_EPS,
    diagonal_gaussian_kl,
    diagonal_gaussian_kl_grad_q,
    gaussian_entropy,
    split_mean_log_std,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from learning.nn.heads import Architecture
from learning.nn.networks import EnsembleMLP
from learning.nn.optimizer import EnsembleAdam
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic


def test_tanh_gaussian_log_prob_matches_change_of_variables() -> None:
    torch.manual_seed(0)
    mean = torch.randn(64, 3, dtype=torch.float64)
    log_std = torch.randn(64, 3, dtype=torch.float64).clamp(-2, 1)
    pre_tanh = (mean + log_std.exp() * torch.randn(64, 3, dtype=torch.float64)).clamp(-3, 3)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    ).log_prob(torch.tanh(pre_tanh)).sum(-1)
    ours = tanh_gaussian_log_prob(mean, log_std, pre_tanh)
    # identical up to the 1e-6 inside the log (at most ~3e-4 for |u| <= 3)
    torch.testing.assert_close(ours, reference, atol=1e-3, rtol=0)


def test_tanh_gaussian_log_prob_by_hand() -> None:
    mean, log_std, u = torch.tensor([[0.3]]), torch.tensor([[-0.5]]), torch.tensor([[0.9]])
    std = math.exp(-0.5)
    gauss = -0.5 * ((0.9 - 0.3) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)
    expected = gauss - math.log(1 - math.tanh(0.9) ** 2 + TANH_EPS)
    assert tanh_gaussian_log_prob(mean, log_std, u).item() == pytest.approx(expected, rel=1e-6)


def test_sample_log_prob_is_the_log_prob_of_the_sample() -> None:
    torch.manual_seed(1)
    mean, log_std = torch.randn(32, 4), torch.randn(32, 4).clamp(-1, 1)
    torch.manual_seed(7)
    action, log_prob = tanh_gaussian_sample(mean, log_std)
    torch.manual_seed(7)
    pre_tanh = mean + log_std.exp() * torch.randn_like(mean)
    torch.testing.assert_close(action, torch.tanh(pre_tanh))
    torch.testing.assert_close(log_prob, tanh_gaussian_log_prob(mean, log_std, pre_tanh))


def test_log_std_is_clamped_and_entropy_is_the_pre_tanh_gaussian() -> None:
    params = torch.tensor([[0.0, 0.0, -50.0, 9.0]])
    mean, log_std = split_mean_log_std(params)
    assert log_std.tolist() == [[-20.0, 2.0]]
    entropy = torch.distributions.Normal(mean, log_std.exp()).entropy().sum(-1)
    torch.testing.assert_close(gaussian_entropy(log_std), entropy)


def test_diagonal_kl_matches_torch() -> None:
    torch.manual_seed(2)
    mp, lp, mq, lq = (torch.randn(10, 3) for _ in range(4))
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mp, lp.exp()), torch.distributions.Normal(mq, lq.exp())
    )
    torch.testing.assert_close(diagonal_gaussian_kl(mp, lp, mq, lq), reference)


def _independent_copies(ensemble: EnsembleMLP) -> list[nn.Sequential]:
    """N ordinary nn.Linear MLPs holding the ensemble's weights, member by member."""
    linears = [m for m in ensemble.body if hasattr(m, "weight")]
    nets = []
    for k in range(ensemble.members):
        layers: list[nn.Module] = []
        for idx, lin in enumerate(linears):
            layer = nn.Linear(lin.weight.shape[1], lin.weight.shape[2])
            with torch.no_grad():
                layer.weight.copy_(lin.weight[k].T)
                layer.bias.copy_(lin.bias[k, 0])
            layers.append(layer)
            if idx < len(linears) - 1:
                layers.append(nn.ReLU())
        nets.append(nn.Sequential(*layers))
    return nets


def _hand_kl_1d(mp: float, lp: float, mq: float, lq: float) -> float:
    """KL(N(mp, e^lp) || N(mq, e^lq)) of one dimension, from the Gaussian densities."""
    sp, sq = math.exp(lp), math.exp(lq)
    return math.log(sq / sp) + (sp * sp + (mp - mq) ** 2) / (2 * sq * sq) - 0.5


def test_kl_gradient_in_q_by_finite_differences() -> None:
    p_mean, p_ls = [0.3, -1.2, 0.0], [-0.5, 0.4, 1.1]
    q_mean, q_ls = [-0.7, 0.2, 0.9], [0.3, -0.8, 0.6]
    grad_mean, grad_ls = diagonal_gaussian_kl_grad_q(
        *(torch.tensor(x, dtype=torch.float64) for x in (p_mean, p_ls, q_mean, q_ls)))
    h = 1e-6
    for d in range(3):
        args = [p_mean[d], p_ls[d], q_mean[d], q_ls[d]]
        for slot, got in ((2, grad_mean[d]), (3, grad_ls[d])):
            up, down = list(args), list(args)
            up[slot] += h
            down[slot] -= h
            expected = (_hand_kl_1d(*up) - _hand_kl_1d(*down)) / (2 * h)
            assert got.item() == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_head_output_splits_into_means_then_clamped_log_stds() -> None:
    """A head of 2A outputs: the first A are the pre-tanh means, the last A the log-stds,
    clamped to [-20, 2]."""
    mean, log_std = split_mean_log_std(torch.tensor([[0.1, 0.2, 0.3, -30.0, 0.5, 7.0]]))
    assert mean[0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert log_std[0].tolist() == pytest.approx([-20.0, 0.5, 2.0])


def test_ensemble_equals_independent_networks_outputs_losses_gradients() -> None:
    torch.manual_seed(3)
    members, batch = 4, 16
    ensemble = EnsembleMLP(members, 5, [32, 32], 3)
    nets = _independent_copies(ensemble)
    x = torch.randn(members, batch, 5)
    target = torch.randn(members, batch, 3)

    out = ensemble(x)
    losses = ((out - target) ** 2).mean(dim=(1, 2))
    losses.sum().backward()
    for k, net in enumerate(nets):
        ref_out = net(x[k])
        torch.testing.assert_close(out[k], ref_out, atol=1e-6, rtol=1e-5)
        ref_loss = ((ref_out - target[k]) ** 2).mean()
        torch.testing.assert_close(losses[k], ref_loss, atol=1e-6, rtol=1e-5)
        ref_loss.backward()
        linears = [m for m in ensemble.body if hasattr(m, "weight")]
        refs = [m for m in net if isinstance(m, nn.Linear)]
        for lin, ref in zip(linears, refs, strict=True):
            torch.testing.assert_close(lin.weight.grad[k], ref.weight.grad.T, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(lin.bias.grad[k, 0], ref.bias.grad, atol=1e-6, rtol=1e-5)


def test_ensemble_adam_step_equals_independent_adam_steps() -> None:
    """The product's stacked network and optimizer train as N independent networks, each with
    its own torch Adam, over several steps."""
    torch.manual_seed(4)
    ensemble = EnsembleMLP(3, 4, [8], 2)
    nets = _independent_copies(ensemble)
    x, y = torch.randn(3, 10, 4), torch.randn(3, 10, 2)
    params = list(ensemble.parameters())
    opt = EnsembleAdam(params, 1e-2, 3)
    ref_opts = [torch.optim.Adam(net.parameters(), lr=1e-2) for net in nets]
    for _ in range(3):
        for p in params:
            p.grad = None
        ((ensemble(x) - y) ** 2).mean(dim=(1, 2)).sum().backward()
        opt.step()
        for k, (net, ref_opt) in enumerate(zip(nets, ref_opts, strict=True)):
            ref_opt.zero_grad()
            ((net(x[k]) - y[k]) ** 2).mean().backward()
            ref_opt.step()
    for k, net in enumerate(nets):
        torch.testing.assert_close(ensemble(x)[k], net(x[k]), atol=1e-5, rtol=1e-4)


def test_xavier_init_per_member_and_head_scale() -> None:
    torch.manual_seed(5)
    net = EnsembleMLP(2, 100, [200], 8, out_blocks=4)
    first = net.body[0].weight
    bound = math.sqrt(6.0 / (100 + 200))
    assert first.abs().max() <= bound and first.abs().max() > 0.9 * bound
    head = net.body[-1].weight
    head_bound = math.sqrt(6.0 / (200 + 2))  # each head initialised as its own 2-wide layer
    assert head.abs().max() <= head_bound and head.abs().max() > 0.9 * head_bound
    assert not torch.equal(first[0], first[1])  # members are independent draws


def test_separate_policy_member_k_is_task_k() -> None:
    torch.manual_seed(6)
    policy = TaskPolicy(Architecture.SEPARATE, 3, 4, 2, [16])
    obs = torch.randn(3, 5, 4)
    ids = torch.arange(3).unsqueeze(1).expand(3, 5)
    mean, log_std = policy(obs, ids)
    nets = _independent_copies(policy.net)
    for k in range(3):
        ref_mean, ref_log_std = nets[k](obs[k]).chunk(2, -1)
        torch.testing.assert_close(mean[k], ref_mean)
        torch.testing.assert_close(log_std[k], ref_log_std.clamp(-20, 2))


def test_multihead_policy_selects_the_task_head() -> None:
    torch.manual_seed(7)
    n, a = 3, 2
    policy = TaskPolicy(Architecture.MULTIHEAD, n, 4, a, [16])
    obs = torch.randn(1, 6, 4)
    ids = torch.tensor([[0, 1, 2, 2, 1, 0]])
    mean, _ = policy(obs, ids)
    all_heads = policy.net(obs).view(6, n, 2 * a)
    for b in range(6):
        torch.testing.assert_close(mean[0, b], all_heads[b, ids[0, b], :a])
    cand_mean, _ = policy.candidates(obs[:, :n])
    for j in range(n):
        for i in range(n):
            torch.testing.assert_close(cand_mean[j, 0, i], all_heads[i, j, :a])


@pytest.mark.parametrize("arch", [Architecture.SEPARATE, Architecture.MULTIHEAD])
def test_twin_critic_layout(arch: Architecture) -> None:
    torch.manual_seed(8)
    n = 3
    critic = TwinCritic(arch, n, 4, 2, [16])
    groups = n if arch is Architecture.SEPARATE else 1
    obs, act = torch.randn(groups, 5, 4), torch.randn(groups, 5, 2)
    ids = (torch.arange(n).unsqueeze(1).expand(n, 5) if groups == n
           else torch.tensor([[0, 1, 2, 1, 0]]))
    q = critic(obs, act, ids).detach()
    raw = critic.net(torch.cat([obs, act], -1).repeat(2, 1, 1))  # (2G, B, heads)
    for twin in range(2):
        for g in range(groups):
            for b in range(5):
                head = ids[g, b] if arch is Architecture.MULTIHEAD else 0
                expected = raw[twin * groups + g, b, head].item()
                assert q[twin, g, b].item() == pytest.approx(expected, abs=1e-6)


def test_ensemble_adam_equals_torch_adam_and_survives_copies() -> None:
    """With every task stepping, EnsembleAdam is torch's Adam step for step, also after a
    state_dict round trip through a deep copy (as a checkpoint resumes it)."""
    torch.manual_seed(9)
    ours_p = [nn.Parameter(torch.randn(2, 3, 4)), nn.Parameter(torch.randn(1))]
    ref_p = [nn.Parameter(p.detach().clone()) for p in ours_p]
    ours = EnsembleAdam(ours_p, 1e-2)
    ref = torch.optim.Adam(ref_p, lr=1e-2)
    for step in range(6):
        grads = [torch.randn_like(p) for p in ours_p]
        for p, q, g in zip(ours_p, ref_p, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
        if step == 2:  # resume ours from its saved state, through a copy
            saved = copy.deepcopy(ours.state_dict())
            ours_p, ours = copy.deepcopy((ours_p, EnsembleAdam(ours_p, 1e-2)))
            ours.load_state_dict(saved)
    for p, q in zip(ours_p, ref_p, strict=True):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=1e-6)
    # the moments too: Adam's step hides a constant scale of the gradient, its moments do not
    state = ours.state_dict()
    for k, q in enumerate(ref_p):
        torch.testing.assert_close(state["exp_avg"][k], ref.state[q]["exp_avg"],
                                   atol=1e-7, rtol=1e-6)
        torch.testing.assert_close(state["exp_avg_sq"][k], ref.state[q]["exp_avg_sq"],
                                   atol=1e-7, rtol=1e-6)
    assert [s.tolist() for s in state["steps"]] == [[6.0], [6.0]]


def test_ensemble_adam_skipped_members_equal_separate_adams() -> None:
    """Members of tasks left out of a step are untouched (parameters, moments, step count):
    the stacked optimizer equals one torch Adam per member that steps only with its task."""
    n, rng = 3, np.random.default_rng(0)
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(2 * n, 4, 5))  # twin critics: member m is task m % n
    temp = nn.Parameter(torch.zeros(n))
    ours = EnsembleAdam([weight, temp], 1e-2, n)
    refs = [nn.Parameter(weight.detach()[m].clone()) for m in range(2 * n)]
    refs += [nn.Parameter(torch.zeros(())) for _ in range(n)]
    ref_opts = [torch.optim.Adam([r], lr=1e-2) for r in refs]
    for _ in range(30):
        tasks = rng.random(n) < 0.5
        weight.grad, temp.grad = torch.randn(2 * n, 4, 5), torch.randn(n)
        ours.step(tasks)
        member_grads = [*weight.grad.unbind(0), *temp.grad.unbind(0)]
        for m, (r, opt, g) in enumerate(zip(refs, ref_opts, member_grads, strict=True)):
            if tasks[m % n]:
                r.grad = g.clone()
                opt.step()
    for m in range(2 * n):
        torch.testing.assert_close(weight.detach()[m], refs[m].detach(), atol=1e-7, rtol=1e-6)
    for i in range(n):
        torch.testing.assert_close(temp.detach()[i], refs[2 * n + i].detach(),
                                   atol=1e-7, rtol=1e-6)
    # moments and step counts member by member (a scaled gradient would show in the moments)
    members = [*ours.exp_avg[0].unbind(0), *ours.exp_avg[1].unbind(0)]
    squares = [*ours.exp_avg_sq[0].unbind(0), *ours.exp_avg_sq[1].unbind(0)]
    steps = [*ours.steps[0].tolist(), *ours.steps[1].tolist()]
    for m, (r, opt) in enumerate(zip(refs, ref_opts, strict=True)):
        ref_state = opt.state.get(r)
        if ref_state is None:  # never stepped: ours untouched too
            assert steps[m] == 0 and not members[m].any() and not squares[m].any()
            continue
        torch.testing.assert_close(members[m], ref_state["exp_avg"], atol=1e-7, rtol=1e-6)
        torch.testing.assert_close(squares[m], ref_state["exp_avg_sq"], atol=1e-7, rtol=1e-6)
        assert steps[m] == float(ref_state["step"])
