"""DECAF (`decaf`): task i's critic sum_j softmax(MLP_i([s, a]))_j Q_j(s, a), checked against a
by-hand evaluation of each task's plain critic and weight network; only task i's weight network
and own critic receive task i's gradient; the targets mix every task's target critic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_FLAGS

import run
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.decaf_critic import DecafCritic

N, OBS, ACT, B = 3, 4, 2, 5


def _mlp(layers: list, member: int, x: torch.Tensor) -> torch.Tensor:
    """Member `member` of an EnsembleMLP written out: affine, ReLU, ..., affine."""
    for k, (linear, _) in enumerate(layers):
        x = x @ linear.weight[member] + linear.bias[member, 0]
        if k < len(layers) - 1:
            x = x.relu()
    return x


def _by_hand(critic: DecafCritic, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(2, N, B)
    for t in range(2):
        for i in range(N):
            x = torch.cat([obs[i], actions[i]], -1)
            w = _mlp(critic.weights.layers, t * N + i, x).softmax(-1)  # (B, N)
            for j in range(N):
                out[t, i] += w[:, j] * _mlp(critic.net.layers, t * N + j, x)[:, 0]
    return out


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return (torch.randn(N, B, OBS), torch.rand(N, B, ACT) * 2 - 1,
            torch.arange(N).view(N, 1).expand(N, B))


def test_each_tasks_value_is_its_weighted_mixture_of_every_tasks_critic() -> None:
    torch.manual_seed(1)
    critic = DecafCritic(N, OBS, ACT, [8, 8])
    obs, actions, ids = _inputs()
    q = critic(obs, actions, ids)
    assert q.shape == (2, N, B)
    torch.testing.assert_close(q, _by_hand(critic, obs, actions), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(critic(obs, actions, ids, twins=1), q[:1])
    with pytest.raises(ValueError, match="one group per task"):
        critic(obs[:1], actions[:1], ids[:1])


def test_task_is_loss_trains_only_its_weight_network_and_its_own_critic() -> None:
    torch.manual_seed(2)
    critic = DecafCritic(N, OBS, ACT, [8, 8])
    obs, actions, ids = _inputs()
    actions.requires_grad_(True)
    i = 1
    critic(obs, actions, ids)[:, i].sum().backward()
    for net in (critic.net, critic.weights):
        for p in net.parameters():
            for member in range(2 * N):
                touched = bool(p.grad[member].abs().sum() > 0)
                assert touched == (member % N == i), (p.shape, member)
    # the action's gradient: through w_i and Q_i; the other critics are constants
    expected = torch.zeros(B, ACT)
    for t in range(2):
        a = actions[i].detach().clone().requires_grad_(True)
        x = torch.cat([obs[i], a], -1)
        w = _mlp(critic.weights.layers, t * N + i, x).softmax(-1)
        qs = torch.stack([_mlp(critic.net.layers, t * N + j, x)[:, 0] for j in range(N)], -1)
        own = torch.zeros(N, dtype=torch.bool)
        own[i] = True
        qs = torch.where(own, qs, qs.detach())
        (w * qs).sum().backward()
        expected += a.grad
    torch.testing.assert_close(actions.grad[i], expected, rtol=1e-5, atol=1e-6)
    assert actions.grad[[0, 2]].abs().sum() == 0


def _sac() -> MultiTaskSAC:
    torch.manual_seed(3)
    policy = TaskPolicy(Architecture.SEPARATE, N, OBS, ACT, [8, 8])
    return MultiTaskSAC(policy, DecafCritic(N, OBS, ACT, [8, 8]), N, ACT,
                        SACConfig(target_update_tau=0.5))


def test_the_update_runs_on_autograd_and_hand_is_refused() -> None:
    sac = _sac()
    assert sac.hand_path_excluded() == "the critic DecafCritic"
    with pytest.raises(ValueError):
        MultiTaskSAC(sac.policy, sac.critic, N, ACT, SACConfig(), update_path="hand")


def test_the_targets_average_every_tasks_critic_and_weights() -> None:
    """The original's target kept the other tasks' critics at their initial weights; here one
    Polyak step of task 0 only moves task 0's members, and a full step moves all of them."""
    sac = _sac()
    obs, actions, _ = _inputs()
    batch = TransitionBatch(obs, actions, torch.randn(N, B), torch.randn(N, B, OBS),
                            torch.zeros(N, B), torch.arange(N).view(N, 1).expand(N, B))
    before = [p.clone() for p in sac.target_critic.parameters()]
    sac.update(batch)
    online = list(sac.critic.parameters())
    for old, new, live in zip(before, sac.target_critic.parameters(), online, strict=True):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * live)
    before = [p.clone() for p in sac.target_critic.parameters()]
    with torch.no_grad():
        for p in sac.critic.parameters():
            p.add_(1.0)
    sac.soft_update_targets(np.array([True, False, False]))
    for old, new in zip(before, sac.target_critic.parameters(), strict=True):
        moved = (new != old).flatten(1).any(1)
        assert moved.tolist() == [m % N == 0 for m in range(2 * N)]


def test_decaf_runs_from_the_command_line(tmp_path: Path) -> None:
    assert run.main(["decaf", *TINY_FLAGS, "--log_dir", str(tmp_path / "r")]) == 0
    header = (tmp_path / "r" / "progress.csv").read_text().splitlines()[0]
    assert "Train/LocalPolicy2/Qf1Loss" in header and "Evaluation/SuccessRate" in header


@pytest.mark.parametrize(("argv", "message"), [
    (["decaf", "--kl_coeff", "0.1"], "only supported by dnc_sac and qmp_dnc"),
    (["decaf", "--update_path", "hand"], "autograd"),
])
def test_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                  tmp_path: Path) -> None:
    assert run.main([*argv, "--log_dir", str(tmp_path / "never")]) == 2
    assert message in capsys.readouterr().err
