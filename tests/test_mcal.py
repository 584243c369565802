"""MCAL (`mcal`) and MCAL + QMP (`qmp_mcal`): one multi-head policy and one temperature trained
on batches from every task, each slice scored by its own task's critics; separate critics each on
its own task's batch. qmp_mcal collects with the Q-switch (the N heads as candidates, task i's
critic scoring), which the original could not run."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_FLAGS
from test_learner import _buffer, _learner, _RecordingSAC

import run
from learning.algorithms import sac as sac_module
from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

N, OBS, ACT, B, SLICE = 3, 4, 2, 6, 2


def test_each_task_step_also_steps_the_actor_on_b_over_n_from_every_task() -> None:
    sac = _RecordingSAC()
    learner = _learner(sac, _buffer([10, 10, 10]), "per_task", gradient_steps_per_itr=6,
                       buffer_batch_size=7, actor_batches="all_tasks")
    learner.train_round(np.array([3, 1, 2]))  # steps 3, 1, 2: updates of 3, 2, 1 tasks
    assert [len(a) for a in sac.actor_batches] == [3, 2, 1]
    for actor in sac.actor_batches:
        for batch in actor:
            assert batch.obs.shape == (N, 7 // N, 2)
            assert batch.task_ids.tolist() == [[k] * (7 // N) for k in range(N)]
    assert all(b.obs.shape == (N, 7, 2) for b in sac.batches)  # the critics' own batches
    plain = _RecordingSAC()
    _learner(plain, _buffer([10, 10, 10]), "per_task").train_round(np.ones(3))
    assert all(a == [] for a in plain.actor_batches)


def _sac(path: str = "auto") -> MultiTaskSAC:
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.MULTIHEAD, N, OBS, ACT, [8])
    critic = TwinCritic(Architecture.SEPARATE, N, OBS, ACT, [8])
    return MultiTaskSAC(policy, critic, N, ACT,
                        SACConfig(per_task_temperature=False, lr=1e-3),
                        update_path=path)  # type: ignore[arg-type]


def _batch(b: int, seed: int) -> TransitionBatch:
    g = torch.Generator().manual_seed(seed)
    return TransitionBatch(torch.randn(N, b, OBS, generator=g),
                           torch.rand(N, b, ACT, generator=g) * 2 - 1,
                           torch.randn(N, b, generator=g), torch.randn(N, b, OBS, generator=g),
                           torch.zeros(N, b), torch.arange(N).view(N, 1).expand(N, b))


def _deterministic(mean: torch.Tensor, log_std: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tanh(mean), -log_std.sum(-1) - mean.square().sum(-1)


def test_the_actor_and_temperature_losses_are_the_means_over_the_all_task_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared policy's and temperature's gradients are those of the mean over the whole
    actor batch of alpha log pi - min_k Q_k^task(s, a) (the fresh critics, each sample's own
    task's) and of -log alpha (log pi + target entropy)."""
    monkeypatch.setattr(sac_module, "tanh_gaussian_sample", _deterministic)
    sac = _sac()
    policy0, log_alpha0 = copy.deepcopy(sac.policy), sac.log_alpha.detach().clone()
    grads: dict[str, list[torch.Tensor]] = {}
    for name in ("policy_optimizer", "alpha_optimizer"):
        optimizer = getattr(sac, name)
        original = optimizer.step

        def step(tasks: object = None, _o: object = optimizer, _orig=original, _n=name) -> None:
            grads[_n] = [p.grad.clone() for p in _o.params]
            _orig(tasks)
        monkeypatch.setattr(optimizer, "step", step)
    actor = _batch(SLICE, 2)
    sac.update(_batch(B, 1), actor_batches=[actor])

    mean, log_std = policy0(actor.obs, actor.task_ids)
    action, log_pi = _deterministic(mean, log_std)
    q = sac.critic(actor.obs, action, actor.task_ids).min(0).values  # critics already stepped
    alpha = log_alpha0.exp()
    loss = (alpha * log_pi - q).mean()
    expected = torch.autograd.grad(loss, list(policy0.parameters()))
    for got, want in zip(grads["policy_optimizer"], expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    alpha_grad = -(log_pi.detach() - ACT).mean()  # d/d log alpha; target entropy -|A|
    torch.testing.assert_close(grads["alpha_optimizer"][0], alpha_grad.view(1))
    stats = sac.stats.means()
    torch.testing.assert_close(torch.tensor(stats["PolicyLoss"], dtype=torch.float64),
                               (alpha * log_pi - q).detach().mean(1).double())


def test_without_actor_batches_the_critics_batch_trains_the_actor() -> None:
    """The same networks and batch with and without an actor batch: the critics step alike,
    the policy differently (both on autograd: without the actor batch they would be equal)."""
    a, b = _sac("autograd"), _sac("autograd")
    torch.manual_seed(5)
    a.update(_batch(B, 1))
    torch.manual_seed(5)
    b.update(_batch(B, 1), actor_batches=[_batch(SLICE, 2)])
    for p, q in zip(a.critic.parameters(), b.critic.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert any(not torch.equal(p, q) for p, q in
               zip(a.policy.parameters(), b.policy.parameters(), strict=True))


def test_a_task_below_min_buffer_size_weighs_nothing_in_the_actor_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Task 2's buffer is still empty: its zero rows get weight 0, and the loss is the mean over
    the other tasks' rows."""
    sac = _RecordingSAC()
    learner = _learner(sac, _buffer([10, 10, 0]), "per_task", gradient_steps_per_itr=3,
                       buffer_batch_size=6, actor_batches="all_tasks")
    learner.train_round(np.array([1, 1, 1]))
    weights = [b.weights for actor in sac.actor_batches for b in actor]
    assert weights and all(w.tolist() == [[1.0] * 2, [1.0] * 2, [0.0] * 2] for w in weights)
    monkeypatch.setattr(sac_module, "tanh_gaussian_sample", _deterministic)
    real = _sac("autograd")
    grads: list[torch.Tensor] = []
    original = real.policy_optimizer.step

    def step(tasks: object = None) -> None:
        grads.append(real.policy_optimizer.params[0].grad.clone())
        original(tasks)
    monkeypatch.setattr(real.policy_optimizer, "step", step)
    policy0 = copy.deepcopy(real.policy)
    actor = _batch(SLICE, 2)
    mask = torch.tensor([[1.0] * SLICE, [1.0] * SLICE, [0.0] * SLICE])
    real.update(_batch(B, 1), actor_batches=[actor.with_weights(mask)])
    mean, log_std = policy0(actor.obs[:2], actor.task_ids[:2])
    action, log_pi = _deterministic(mean, log_std)
    q = real.critic(actor.obs, torch.cat([action, torch.zeros(1, SLICE, ACT)]),
                    actor.task_ids)[:, :2].min(0).values
    loss = (log_pi - q).mean()  # alpha = exp(0) = 1 until the temperature's first step
    expected = torch.autograd.grad(loss, next(policy0.parameters()))[0]
    torch.testing.assert_close(grads[0], expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="separate actor batches"):
        _sac("hand").update(_batch(B, 1), actor_batches=[actor])


@pytest.mark.parametrize("method", ["mcal", "qmp_mcal"])
def test_mcal_runs_from_the_command_line(method: str, tmp_path: Path) -> None:
    assert run.main([method, *TINY_FLAGS, "--log_dir", str(tmp_path / "r")]) == 0
    header = (tmp_path / "r" / "progress.csv").read_text().splitlines()[0]
    assert "Train/LocalPolicy2/PolicyLoss" in header
    assert ("Evaluation/p/SuccessRate" in header) == (method == "qmp_mcal")


@pytest.mark.parametrize(("argv", "message"), [
    (["mcal", "--policy_architecture", "separate"], "needs --policy_architecture multihead"),
    (["qmp_mcal", "--Q_architecture", "multihead"], "--Q_architecture separate"),
    (["mcal", "--update_path", "hand"], "autograd"),
    (["mcal", "--kl_coeff", "0.1"], "only supported by dnc_sac and qmp_dnc"),
])
def test_refusals(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                  tmp_path: Path) -> None:
    assert run.main([*argv, "--log_dir", str(tmp_path / "never")]) == 2
    assert message in capsys.readouterr().err
