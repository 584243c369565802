"""--grad_clip: each optimizer's gradient norm clipped before its step, per network of an
ensemble (each was a network with its own optimizer in the original), as torch's clip_grad_norm_
on that network alone would; over all parameters of a shared network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.nn.optimizer import EnsembleAdam
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic


@pytest.mark.parametrize("shared", [False, True])
def test_clipping_equals_clip_grad_norm_on_each_network_alone(shared: bool) -> None:
    torch.manual_seed(0)
    members = 1 if shared else 3
    weight = torch.nn.Parameter(torch.randn(members, 4, 5))
    bias = torch.nn.Parameter(torch.randn(members, 1, 5))
    # member 0's gradient is small (left as it is), the others large (clipped to norm 2)
    grads = [torch.randn(members, 4, 5) * torch.tensor([0.1, 5.0, 20.0][:members]).view(-1, 1, 1),
             torch.randn(members, 1, 5) * 0.1]
    singles = []
    for m in range(members):
        w = torch.nn.Parameter(weight[m].detach().clone())
        b = torch.nn.Parameter(bias[m].detach().clone())
        w.grad, b.grad = grads[0][m].clone(), grads[1][m].clone()
        torch.nn.utils.clip_grad_norm_([w, b], 2.0)
        torch.optim.Adam([w, b], lr=0.01).step()
        singles.append((w, b))
    weight.grad, bias.grad = grads[0].clone(), grads[1].clone()
    EnsembleAdam([weight, bias], 0.01, None if shared else 3, max_grad_norm=2.0).step()
    for m, (w, b) in enumerate(singles):
        torch.testing.assert_close(weight[m], w, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(bias[m], b, rtol=1e-6, atol=1e-7)
    norms = torch.sqrt(weight.grad.square().sum((1, 2)) + bias.grad.square().sum((1, 2)))
    before = torch.sqrt(grads[0].square().sum((1, 2)) + grads[1].square().sum((1, 2)))
    expected = torch.minimum(before, torch.full_like(before, 2.0))
    torch.testing.assert_close(norms, expected, rtol=1e-5, atol=1e-5)
    if not shared:
        assert before[0] < 2.0 < before[1]  # one member kept, one clipped


def test_the_sac_update_steps_with_clipped_gradients() -> None:
    n, obs, act, b = 3, 4, 2, 8

    def build(clip: float | None) -> MultiTaskSAC:
        torch.manual_seed(1)
        return MultiTaskSAC(TaskPolicy(Architecture.SEPARATE, n, obs, act, [8]),
                            TwinCritic(Architecture.SEPARATE, n, obs, act, [8]), n, act,
                            SACConfig(grad_clip=clip))

    torch.manual_seed(2)
    batch = TransitionBatch(obs=torch.randn(n, b, obs), actions=torch.rand(n, b, act),
                            rewards=torch.randn(n, b) * 50, next_obs=torch.randn(n, b, obs),
                            terminals=torch.zeros(n, b),
                            task_ids=torch.arange(n).unsqueeze(1).expand(n, b))
    plain, clipped, loose = build(None), build(1e-2), build(1e9)
    for sac in (plain, clipped, loose):
        torch.manual_seed(3)
        sac.update(batch)
    for sac_params in ("critic", "policy"):
        for p in getattr(clipped, sac_params).parameters():
            assert p.grad is not None
        per_member = torch.sqrt(sum(p.grad.reshape(p.shape[0], -1).square().sum(1)
                                    for p in getattr(clipped, sac_params).parameters()))
        assert (per_member <= 1e-2 * (1 + 1e-4)).all(), sac_params
    assert clipped.log_alpha.grad.abs().max() <= 1e-2 * (1 + 1e-4)
    # a bound no gradient reaches changes nothing
    for a, c in zip(plain.critic.parameters(), loose.critic.parameters(), strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    assert not np.allclose(plain.critic.net.body[0].weight.detach(),
                           clipped.critic.net.body[0].weight.detach())
