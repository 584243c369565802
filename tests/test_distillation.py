"""DnC's distillation: the centroid's loss by hand (the stored action's tanh-Gaussian
log-likelihood), the fit reaching the stored actions, the copy into every task policy with the
task optimizers untouched, the schedule (epochs P, 2P, ...), and the flag's refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import run
from learning.algorithms.distillation import Distillation
from learning.algorithms.learner import Learner
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import MultiTaskReplayBuffer
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

N = 3


def _buffer(action: float, size: int = 50) -> MultiTaskReplayBuffer:
    buffer = MultiTaskReplayBuffer(N, 100, 1, 1, seed=0)
    rng = np.random.default_rng(0)
    for task in range(N):
        obs = rng.normal(size=(size, 1))
        buffer.add(task, obs, np.full((size, 1), action), np.zeros(size), obs, np.zeros(size),
                   np.full(size, task))
    return buffer


def test_the_loss_is_the_stored_actions_negative_log_likelihood() -> None:
    policy = TaskPolicy(Architecture.SEPARATE, N, 1, 1, [])
    distill = Distillation(policy, 1e-3, 1, 2)
    with torch.no_grad():  # centroid: mean = 0.5 o + 0.1, log_std = -0.2 o - 0.3
        head = distill.centroid.net.body[-1]
        head.weight[0, 0] = torch.tensor([0.5, -0.2])
        head.bias[0, 0] = torch.tensor([0.1, -0.3])
    obs, actions = torch.tensor([[1.0], [-2.0]]), torch.tensor([[0.3], [-0.9]])
    terms = []
    for o, a in zip(obs[:, 0].tolist(), actions[:, 0].tolist(), strict=True):
        mean, log_std = 0.5 * o + 0.1, -0.2 * o - 0.3
        u = math.atanh(a)
        gauss = -0.5 * ((u - mean) / math.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        terms.append(gauss - math.log(1 - a * a + 1e-6))
    assert float(distill.loss(obs, actions)) == pytest.approx(-np.mean(terms), rel=1e-5)


def test_the_centroid_starts_as_task_0_fits_the_data_and_is_copied_into_every_policy() -> None:
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.SEPARATE, N, 1, 1, [8])
    critic = TwinCritic(Architecture.SEPARATE, N, 1, 1, [8])
    sac = MultiTaskSAC(policy, critic, N, 1, SACConfig())
    moments = [m.clone() for m in sac.policy_optimizer.exp_avg]
    distill = Distillation(policy, 3e-3, 400, 16)
    for mine, theirs in zip(distill.centroid.parameters(), policy.parameters(), strict=True):
        torch.testing.assert_close(mine[0], theirs[0])
    assert not torch.equal(policy.net.body[0].weight[0], policy.net.body[0].weight[1])
    before = distill.loss(torch.zeros(4, 1), torch.full((4, 1), 0.6))
    loss = distill.run(_buffer(0.6))
    assert loss < float(before.detach())
    for p in policy.parameters():  # every task now holds the centroid
        for task in range(N):
            torch.testing.assert_close(p[task], p[0], rtol=0, atol=0)
    for mine, theirs in zip(distill.centroid.parameters(), policy.parameters(), strict=True):
        torch.testing.assert_close(theirs[0], mine[0], rtol=0, atol=0)
    mean, _ = policy(torch.randn(N, 5, 1), torch.arange(N).unsqueeze(1).expand(N, 5))
    assert torch.tanh(mean).sub(0.6).abs().max() < 0.05  # the stored action, whatever o is
    for m, saved in zip(sac.policy_optimizer.exp_avg, moments, strict=True):
        assert torch.equal(m, saved)  # the task policies' Adam states are left alone


def test_distillation_runs_on_epochs_p_2p_and_never_on_epoch_0() -> None:
    policy = TaskPolicy(Architecture.SEPARATE, N, 1, 1, [4])
    sac = MultiTaskSAC(policy, TwinCritic(Architecture.SEPARATE, N, 1, 1, [4]), N, 1,
                       SACConfig())
    learner = Learner(sac, _buffer(0.2), sampling="per_task", gradient_steps_per_itr=1,
                      buffer_batch_size=6, min_buffer_size=1,
                      distillation=Distillation(policy, 1e-3, 2, 2), distillation_period=2)
    ran = [not math.isnan(learner.after_epoch(e)) for e in range(7)]  # type: ignore[arg-type]
    assert ran == [False, False, True, False, True, False, True]
    plain = Learner(sac, _buffer(0.2), sampling="per_task", gradient_steps_per_itr=1,
                    buffer_batch_size=6, min_buffer_size=1)
    assert plain.after_epoch(4) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["mtsac", "--distillation_period", "2"], "dnc_sac or qmp_dnc"),
    (["dnc_sac", "--distillation_period", "3", "--evaluation_frequency", "2"], "multiple"),
    (["dnc_sac", "--distillation_period", "2", "--distillation_n_epochs", "0"], "positive"),
])
def test_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                  tmp_path: object) -> None:
    assert run.main([*argv, "--log_dir", str(tmp_path) + "/never"]) == 2
    assert message in capsys.readouterr().err
