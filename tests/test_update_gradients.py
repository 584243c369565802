"""The SAC update's two paths give the same gradients: the hand-written one (taped forward passes,
`backward` methods) and autograd on the losses as `learning/algorithms/sac_losses.py` defines
them, for the critics, the policies and the temperatures, on every architecture and every option
of the update (layer norm, UDS weights, the DnC KL penalty, both temperature losses, shared or
per-task temperatures, log-stds outside their clamp, tasks left out of a step)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.distributions import LOG_STD_MAX, LOG_STD_MIN
from learning.nn.heads import Architecture
from learning.nn.networks import EnsembleMLP
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

OBS, ACT, HIDDEN = 5, 3, [16, 12]


def _build(arch: Architecture, *, layer_norm: bool, temperature_loss: str,
           per_task_temperature: bool, kl: bool, n: int = 3, update_path: str = "hand"
           ) -> MultiTaskSAC:
    obs_dim = OBS + (n if arch is Architecture.SHARED else 0)
    policy = TaskPolicy(arch, n, obs_dim, ACT, HIDDEN)
    critic = TwinCritic(arch, n, obs_dim, ACT, HIDDEN, layer_norm=layer_norm)
    config = SACConfig(temperature_loss=temperature_loss,  # type: ignore[arg-type]
                       per_task_temperature=per_task_temperature)
    beta = torch.rand(n, n) if kl else None
    sac = MultiTaskSAC(policy, critic, n, ACT, config, kl_coeff=beta,
                       update_path=update_path)  # type: ignore[arg-type]
    with torch.no_grad():  # log-stds beyond both clamp bounds on some units, and non-zero alphas
        head = policy.net.body[-1]
        head.weight.mul_(8.0)
        # every head's first log-std unit shifted down by 20: its values straddle the lower
        # bound (-20) while the other units straddle the upper one (2)
        first_log_std = torch.arange(policy.heads) * 2 * ACT + ACT
        head.bias[..., first_log_std] -= 20.0
        sac.log_alpha.uniform_(-1.0, 1.0)
    return sac


def _raw_log_stds(sac: MultiTaskSAC, obs: torch.Tensor) -> torch.Tensor:
    """The policy's unclamped log-std outputs of every head on obs (G, B, d): (G, B, heads, A)."""
    with torch.no_grad():
        out = sac.policy.net(obs)
    return out.view(*out.shape[:2], sac.policy.heads, 2 * ACT)[..., ACT:]


def _batch(sac: MultiTaskSAC, *, weighted: bool, b: int = 7) -> TransitionBatch:
    n = sac.num_tasks
    groups = n if sac.policy.per_task_groups else 1
    obs_dim = sac.policy.net.in_features
    ids = (torch.arange(n).unsqueeze(1).expand(n, b) if groups == n
           else torch.randint(0, n, (1, b)))
    batch = TransitionBatch(
        obs=torch.randn(groups, b, obs_dim), actions=torch.rand(groups, b, ACT) * 2 - 1,
        rewards=torch.randn(groups, b), next_obs=torch.randn(groups, b, obs_dim),
        terminals=(torch.rand(groups, b) < 0.3).to(torch.get_default_dtype()), task_ids=ids)
    if weighted:
        batch = batch.with_weights((torch.rand(groups, b) < 0.6).to(torch.get_default_dtype()))
    return batch


def _grads(sac: MultiTaskSAC) -> dict[str, torch.Tensor]:
    out = {f"critic.{k}": p.grad for k, p in sac.critic.named_parameters()}
    out |= {f"policy.{k}": p.grad for k, p in sac.policy.named_parameters()}
    out["log_alpha"] = sac.log_alpha.grad
    return out


@pytest.fixture
def float64() -> Iterator[None]:
    """Compare in float64: with saturated tanh units (1 - a^2 near 0) float32 rounding alone
    separates two correct gradients by more than a tight tolerance."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Equal up to rounding, measured against the tensor's largest entry (the two computations
    add in different orders; a wrong term would be off by its whole size)."""
    error = (actual - expected).abs().max().item()
    assert error <= 1e-9 * expected.abs().max().item() + 1e-12, (name, error)


CASES = [
    *itertools.product(
        [Architecture.SEPARATE, Architecture.MULTIHEAD, Architecture.SHARED],
        [False, True],  # layer norm
        [False, True],  # UDS weights
        ["log_alpha", "alpha"],
        [True, False],  # per-task temperature
        [False],  # KL
    ),
    (Architecture.SEPARATE, False, False, "log_alpha", True, True),
    (Architecture.SEPARATE, True, True, "log_alpha", True, True),
]


@pytest.mark.parametrize(("arch", "layer_norm", "weighted", "temperature_loss",
                          "per_task_temperature", "kl"), CASES)
def test_update_gradients_equal_autograd(arch: Architecture, layer_norm: bool, weighted: bool,
                                         temperature_loss: str, per_task_temperature: bool,
                                         kl: bool, float64: None) -> None:
    torch.manual_seed(11)
    ours = _build(arch, layer_norm=layer_norm, temperature_loss=temperature_loss,
                  per_task_temperature=per_task_temperature, kl=kl)
    reference = copy.deepcopy(ours)
    reference.hand_path = False
    assert ours.hand_path
    # with separate networks a third step leaves task 1 out (the original's gradient-step split)
    masks = [None, None] + ([np.array([True, False, True])] if ours.critic.groups > 1 else [])
    for step, tasks in enumerate(masks):
        batch = _batch(ours, weighted=weighted)
        kl_obs = torch.randn(4, ours.policy.net.in_features) if kl else None
        seed = 100 + step
        torch.manual_seed(seed)
        ours.update(batch, kl_obs, tasks)
        torch.manual_seed(seed)
        reference.update(batch, kl_obs, tasks)
        expected = _grads(reference)
        for name, grad in _grads(ours).items():
            assert grad is not None and expected[name] is not None, name
            _assert_close_to_scale(grad, expected[name], name)
    for mine, theirs in zip([*ours.critic.parameters(), *ours.policy.parameters(),
                             *ours.target_critic.parameters(), ours.log_alpha],
                            [*reference.critic.parameters(), *reference.policy.parameters(),
                             *reference.target_critic.parameters(), reference.log_alpha],
                            strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-12, rtol=1e-9)
    mine_stats, their_stats = ours.stats.means(), reference.stats.means()
    assert mine_stats.keys() == their_stats.keys()
    for name, values in mine_stats.items():
        np.testing.assert_allclose(values, their_stats[name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize(("arch", "layer_norm", "weighted", "temperature_loss",
                          "per_task_temperature", "kl"), CASES)
def test_case_grid_reaches_the_clamp_bounds(arch: Architecture, layer_norm: bool,
                                            weighted: bool, temperature_loss: str,
                                            per_task_temperature: bool, kl: bool,
                                            float64: None) -> None:
    """Every case above must exercise the log-std clamp on both sides and inside it on its
    first batch (the policy sees obs and next_obs), or a wrong clamp gradient at one bound
    (say, passing gradient below -20) could pass unnoticed."""
    torch.manual_seed(11)
    sac = _build(arch, layer_norm=layer_norm, temperature_loss=temperature_loss,
                 per_task_temperature=per_task_temperature, kl=kl)
    batch = _batch(sac, weighted=weighted)
    raw = _raw_log_stds(sac, torch.cat([batch.obs, batch.next_obs], dim=1))
    if sac.policy.heads > 1:  # only each sample's own head enters the update
        ids = batch.task_ids.repeat(1, 2)
        raw = raw.gather(2, ids[..., None, None].expand(*ids.shape, 1, ACT)).squeeze(2)
    assert (raw > LOG_STD_MAX).any(), "no log-std above the upper clamp bound"
    assert (raw < LOG_STD_MIN).any(), "no log-std below the lower clamp bound"
    assert ((raw > LOG_STD_MIN) & (raw < LOG_STD_MAX)).any(), "no log-std inside the clamp"


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("out", [1, 4])
def test_taped_mlp_backward_equals_autograd(layer_norm: bool, out: int) -> None:
    torch.manual_seed(12)
    net = EnsembleMLP(3, 7, [16, 12], out, layer_norm=layer_norm)
    x = torch.randn(3, 9, 7, requires_grad=True)
    y = net(x)
    grad_out = torch.randn_like(y)
    (y * grad_out).sum().backward()
    with torch.no_grad():
        y_taped, tape = net.forward_taped(x)
        x_grad, grads = net.backward(tape, grad_out, input_grad_from=4)
        no_params = net.backward(tape, grad_out, param_grads=False)
    torch.testing.assert_close(y_taped, y, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(x_grad, x.grad[..., 4:], atol=1e-6, rtol=1e-5)
    assert no_params == (None, [])
    for name, (mine, p) in zip([n for n, _ in net.named_parameters()],
                               zip(grads, net.parameters(), strict=True), strict=True):
        torch.testing.assert_close(mine, p.grad, atol=1e-5, rtol=1e-4, msg=name)
