"""DnC with --regularize_representation: the penalty is the mean squared difference between the
policies' last hidden layers (the other policy held fixed), weighted by --kl_coeff, in place of the
KL; it trains on autograd, logs its own statistics, and the flag refuses what it cannot mean."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import run
from learning.algorithms import sac_losses
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

N, OBS, ACT, B = 3, 4, 2, 5


def test_distance_by_hand() -> None:
    hidden = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]], [[1.0, 4.0]]])  # (N, B=1, H=2)
    d = sac_losses.representation_distance(hidden)
    expected = torch.tensor([[0.0, 2.5, 2.0], [2.5, 0.0, 8.5], [2.0, 8.5, 0.0]])
    torch.testing.assert_close(d, expected)
    # only row i's policy gets gradient: pi_j is held fixed
    h = hidden.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sac_losses.representation_distance(h)[0, 1], h)
    torch.testing.assert_close(grad[0, 0], torch.tensor([1.0, 2.0]))  # d/dh_0 of mean (h0-h1)^2
    assert grad[1].abs().sum() == 0 and grad[2].abs().sum() == 0


def test_the_update_adds_the_weighted_penalty_gradient_to_each_policy() -> None:
    torch.manual_seed(0)
    beta = torch.tensor([[0.0, 0.5, 0.2], [0.3, 0.0, 0.0], [1.0, 0.4, 0.0]])

    def build(kl: torch.Tensor | None) -> MultiTaskSAC:
        torch.manual_seed(1)
        return MultiTaskSAC(TaskPolicy(Architecture.SEPARATE, N, OBS, ACT, [6, 5]),
                            TwinCritic(Architecture.SEPARATE, N, OBS, ACT, [6]), N, ACT,
                            SACConfig(dnc_penalty="representation"), kl_coeff=kl,
                            update_path="autograd")

    penalised, plain = build(beta.clone()), build(None)
    assert not penalised.hand_path
    batch = TransitionBatch(obs=torch.randn(N, B, OBS), actions=torch.rand(N, B, ACT),
                            rewards=torch.randn(N, B), next_obs=torch.randn(N, B, OBS),
                            terminals=torch.zeros(N, B),
                            task_ids=torch.arange(N).unsqueeze(1).expand(N, B))
    kl_obs = torch.randn(7, OBS)
    # the penalty's gradient by hand: each policy's own last hidden layer, the others fixed
    policy = penalised.policy
    net = policy.net
    hidden = []
    for i in range(N):
        x = kl_obs
        for (linear, _), _act in zip(net.layers[:-1], net.activations, strict=True):
            x = torch.relu(x @ linear.weight[i] + linear.bias[i])
        hidden.append(x)
    penalty = sum(beta[i, j] * (hidden[i] - hidden[j].detach()).square().mean()
                  for i in range(N) for j in range(N) if i != j)
    extra = torch.autograd.grad(penalty, list(policy.parameters()), allow_unused=True)
    for sac in (penalised, plain):
        torch.manual_seed(5)
        sac.update(batch, kl_obs if sac is penalised else None)
    for got, want, e in zip(penalised.policy.parameters(), plain.policy.parameters(), extra,
                            strict=True):
        torch.testing.assert_close(got.grad, want.grad + (0 if e is None else e), rtol=1e-5,
                                   atol=1e-7)
    stats = penalised.stats.means()
    assert "PolicyRepresentationPenalty" in stats and "PolicyKL" not in stats
    want = [sum(beta[i, j] * (hidden[i] - hidden[j]).square().mean() for j in range(N) if j != i)
            for i in range(N)]
    assert stats["PolicyRepresentationPenalty"] == pytest.approx([float(w.detach()) for w in want],
                                                                rel=1e-5)


def test_the_flag_through_the_cli(tiny_flags: list[str], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    log_dir = tmp_path / "rep"
    assert run.main(["dnc_sac", *tiny_flags, "--kl_coeff", "0.5", "--regularize_representation",
                     "--log_dir", str(log_dir)]) == 0
    with open(log_dir / "progress.csv") as f:
        row = list(csv.DictReader(f))[-1]
    assert float(row["Train/LocalPolicy1/PolicyRepresentationPenalty"]) > 0
    assert "Train/LocalPolicy1/PolicyKL" not in row
    for argv, message in ((["dnc_sac", "--regularize_representation"], "--kl_coeff"),
                          (["dnc_sac", "--kl_coeff", "0.5", "--regularize_representation",
                            "--policy_architecture", "multihead", "--Q_architecture",
                            "multihead"], "separate")):
        capsys.readouterr()
        assert run.main([*argv, "--log_dir", str(tmp_path / "never")]) == 2
        assert message in capsys.readouterr().err
