"""The learners' schedule, pinned to the original's rules: warm-up and the steps collected per
round, the gradient-step split, which tasks each batched update steps, the DnC KL batch, the
UDS threshold's edge cases and the SharedData statistic. A recording stand-in replaces the SAC
update (its math is tested in test_sac_losses.py); buffers and critics are real or exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learning.algorithms.learner import Learner, sharing_weights, split_gradient_steps
from learning.buffers.replay_buffer import MultiTaskReplayBuffer, TransitionBatch
from learning.nn.heads import Architecture
from learning.q_functions.twin_critic import TwinCritic


class _RecordingSAC:
    """Stands in for MultiTaskSAC: records which tasks each update and target update steps,
    and the shape of each update's KL observations."""

    def __init__(self, num_tasks: int = 3, kl: bool = False,
                 critic: TwinCritic | None = None) -> None:
        self.n = num_tasks
        self.kl_coeff = torch.ones(num_tasks, num_tasks) if kl else None
        self.critic = critic
        self.updates: list[list[bool]] = []
        self.targets: list[list[bool]] = []
        self.kl_shapes: list[tuple[int, ...] | None] = []
        self.batches: list[TransitionBatch] = []
        self.actor_batches: list[list[TransitionBatch]] = []

    def update(self, batch: TransitionBatch, kl_obs: torch.Tensor | None = None,
               tasks: np.ndarray | None = None, actor_batches: list | tuple = ()) -> None:
        self.actor_batches.append(list(actor_batches))
        self.updates.append([True] * self.n if tasks is None else tasks.tolist())
        self.kl_shapes.append(None if kl_obs is None else tuple(kl_obs.shape))
        self.batches.append(batch)

    def soft_update_targets(self, tasks: np.ndarray | None = None) -> None:
        self.targets.append([True] * self.n if tasks is None else tasks.tolist())


def _buffer(sizes: list[int], *, shared: bool = False, obs_dim: int = 2) -> MultiTaskReplayBuffer:
    buffer = MultiTaskReplayBuffer(len(sizes), 100, obs_dim, 1, seed=0, shared=shared)
    for task, size in enumerate(sizes):
        if size:
            buffer.add(task, np.zeros((size, obs_dim)), np.zeros((size, 1)), np.zeros(size),
                       np.zeros((size, obs_dim)), np.zeros(size), np.full(size, task))
    return buffer


def _learner(sac: _RecordingSAC, buffer: MultiTaskReplayBuffer, sampling: str, **kw: object
             ) -> Learner:
    options = {"gradient_steps_per_itr": 10, "buffer_batch_size": 4, "min_buffer_size": 10}
    return Learner(sac, buffer, sampling=sampling, **{**options, **kw})  # type: ignore[arg-type]


def test_gradient_step_split() -> None:
    """steps_i = max(1, floor(G n_i / sum_j n_j)), as the original."""
    assert split_gradient_steps(1000, np.full(4, 250)).tolist() == [250, 250, 250, 250]
    assert split_gradient_steps(1000, np.full(3, 7)).tolist() == [333, 333, 333]
    assert split_gradient_steps(10, np.array([1, 2, 7])).tolist() == [1, 2, 7]
    assert split_gradient_steps(3, np.array([1, 1, 100])).tolist() == [1, 1, 2]  # max(1, .)
    assert split_gradient_steps(1000, np.array([500, 300, 200, 0])).tolist() == [500, 300, 200,
                                                                                 1]


@pytest.mark.parametrize("sampling", ["per_task", "sharing"])
def test_per_task_warm_up_lasts_until_every_task_buffer_holds_min_buffer_size(sampling: str
                                                                              ) -> None:
    buffer = _buffer([10, 12, 9])
    learner = _learner(_RecordingSAC(), buffer, sampling)
    assert learner.warming_up()
    assert learner.steps_to_collect(batch_size=1000) == 30  # min_buffer_size x N
    buffer.add(2, np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(1), np.zeros((1, 2)), np.zeros(1),
               np.full(1, 2))
    assert not learner.warming_up()  # exactly min_buffer_size is enough
    assert learner.steps_to_collect(batch_size=1000) == 1000


def test_parameters_warm_up_counts_the_shared_buffer_as_a_whole() -> None:
    buffer = _buffer([9, 0, 0], shared=True)
    learner = _learner(_RecordingSAC(), buffer, "mixed")
    assert learner.warming_up()
    assert learner.steps_to_collect(batch_size=1000) == 10  # min_buffer_size in all
    buffer.add(0, np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(1), np.zeros((1, 2)), np.zeros(1),
               np.full(1, 0))
    assert not learner.warming_up()  # tasks 1 and 2 hold nothing: it does not matter
    assert learner.steps_to_collect(batch_size=1000) == 1000
    assert _learner(_RecordingSAC(), _buffer([1, 0, 0], shared=True), "mixed",
                    min_buffer_size=1).steps_to_collect(batch_size=5) == 5


def test_parameters_rounds_run_gradient_steps_per_itr_updates_once_warm() -> None:
    sac, calls = _RecordingSAC(), []
    cold = _learner(sac, _buffer([5, 0, 0], shared=True), "mixed", gradient_steps_per_itr=7)
    assert cold.gradient_steps_per_task(np.array([5, 0, 0])).tolist() == [7, 7, 7]
    cold.train_round(np.array([5, 0, 0]), lambda: calls.append(1))
    assert sac.updates == [] and calls == [] and cold.gradient_steps == 0
    warm = _learner(sac, _buffer([10, 2, 0], shared=True), "mixed", gradient_steps_per_itr=7)
    warm.train_round(np.array([10, 2, 0]), lambda: calls.append(1))
    assert sac.updates == [[True] * 3] * 7 and len(calls) == 7 and sac.targets == []
    assert warm.gradient_steps == 7
    assert warm.pop_task_gradient_steps().tolist() == [7, 7, 7]


def test_unequal_samples_give_unequal_gradient_steps() -> None:
    """A round's gradient steps follow each task's samples; update t steps the tasks with more
    than t steps; a task below min_buffer_size only gets its target updates, as the original."""
    sac = _RecordingSAC()
    learner = _learner(sac, _buffer([40, 30, 5]), "per_task")
    learner.train_round(np.array([60, 20, 20]))  # split: 6, 2, 2
    assert sac.updates == [[True, True, False]] * 2 + [[True, False, False]] * 4
    assert sac.targets == [[False, False, True]] * 2  # task 2: below min_buffer_size
    assert learner.gradient_steps == 6
    assert learner.pop_task_gradient_steps().tolist() == [6, 2, 0]
    assert learner.pop_task_gradient_steps().tolist() == [0, 0, 0]


def test_every_ready_task_with_steps_left_steps_together() -> None:
    sac, calls = _RecordingSAC(), []
    learner = _learner(sac, _buffer([10, 10, 10]), "per_task", gradient_steps_per_itr=6)
    learner.train_round(np.array([3, 1, 2]), lambda: calls.append(1))  # split: 3, 1, 2
    assert sac.updates == [[True, True, True], [True, False, True], [True, False, False]]
    assert sac.targets == [] and len(calls) == 3
    assert learner.gradient_steps == 3
    assert learner.pop_task_gradient_steps().tolist() == [3, 1, 2]
    learner.train_round(np.array([1, 1, 1]))  # 2 each: counting goes on
    assert learner.gradient_steps == 5


@pytest.mark.parametrize(("batch", "per_task"), [(16, 5), (4, 1), (3, 1)])
def test_dnc_kl_term_gets_batch_size_over_n_observations_of_every_task(batch: int,
                                                                       per_task: int) -> None:
    """buffer_batch_size // N from each task buffer (at least one) for the KL term."""
    n = 3
    sac = _RecordingSAC(n, kl=True)
    learner = _learner(sac, _buffer([10] * n), "per_task", buffer_batch_size=batch,
                       gradient_steps_per_itr=2 * n)
    learner.train_round(np.ones(n))
    assert sac.kl_shapes == [(n * per_task, 2)] * 2
    assert all(b.obs.shape == (n, batch, 2) for b in sac.batches)


class _Q1FromObservation:
    """An exact critic: Q1 = obs[..., 0], Q2 = -Q1 (so the twins cannot be swapped unseen)."""

    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, task_ids: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return obs[..., 0], -obs[..., 0]


def _scored_batch(own_q: list[list[float]], shared_q: list[list[float]]) -> TransitionBatch:
    q = torch.tensor([o + s for o, s in zip(own_q, shared_q, strict=True)])
    n, total = q.shape
    obs = torch.stack([q, torch.zeros_like(q)], dim=-1)
    return TransitionBatch(obs, torch.zeros(n, total, 1), torch.zeros(n, total), obs,
                           torch.zeros(n, total), torch.arange(n).view(-1, 1).expand(n, total))


@pytest.mark.parametrize(("quantile", "kept"), [
    (0.1, [1, 1, 1, 1]),    # floor(8 q) = 0: the threshold is -inf, everything is shared
    (0.125, [0, 0, 1, 1]),  # floor(8 q) = 1: the smallest own value, strictly exceeded
    (0.25, [0, 0, 0, 1]),   # floor(8 q) = 2: the second smallest
])
def test_uds_threshold_at_its_smallest_indices(quantile: float, kept: list[int]) -> None:
    own = [[5.0, 3.0, 7.0, 4.0, 6.0, 8.0, 9.0, 10.0]]  # sorted: 3, 4, 5, ...
    shared = [[-100.0, 3.0, 3.5, 4.5]]
    weights, fraction = sharing_weights(_Q1FromObservation(), _scored_batch(own, shared), 8,
                                        quantile)  # type: ignore[arg-type]
    assert weights.tolist() == [[1.0] * 8 + [float(k) for k in kept]]
    assert fraction.tolist() == [sum(kept) / 4]


def test_shared_data_averages_the_kept_share_of_the_tasks_that_step() -> None:
    """SharedData of task i: the mean over its updates of the share of shared transitions kept
    (the weights it trained on); a task that did not step does not count."""
    n, obs_dim = 3, 2
    torch.manual_seed(0)
    critic = TwinCritic(Architecture.SEPARATE, n, obs_dim, 1, [8])
    buffer = MultiTaskReplayBuffer(n, 100, obs_dim, 1, seed=0)
    rng = np.random.default_rng(0)
    for task in range(n):
        buffer.add(task, rng.normal(size=(40, obs_dim)), rng.uniform(-1, 1, (40, 1)),
                   np.zeros(40), rng.normal(size=(40, obs_dim)), np.zeros(40), np.full(40, task))
    learner = _learner(_RecordingSAC(n, critic=critic), buffer, "sharing", buffer_batch_size=8,
                       sharing_quantile=0.5, min_reward=-1.0)
    masks = [np.array([True, False, True]), np.array([True, True, False])]
    shares = []
    for mask in masks:
        batch = learner.sample(mask)
        assert batch.weights is not None and (batch.rewards[:, 8:] == -1.0).all()
        shares.append(batch.weights[:, 8:].mean(1))
    expected = [(shares[0][0] + shares[1][0]).item() / 2, shares[1][1].item(),
                shares[0][2].item()]
    got = learner.shared_data.means()["SharedData"]
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0 < min(expected) and max(expected) < 1  # the filter was partly keeping
    learner.shared_data.reset()
    learner.sample(None)  # every task counts
    assert not any(math.isnan(v) for v in learner.shared_data.means()["SharedData"])
