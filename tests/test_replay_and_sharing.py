"""Replay buffers and unsupervised data sharing: batch layouts, min_reward relabelling, the
Q-quantile filter, and the mixture-matrix normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.learner import sharing_weights
from learning.replay_buffer import MultiTaskReplayBuffer
from learning.run_logger import mixture_probabilities

N = 3


def _episode(task: int, steps: range) -> tuple[np.ndarray, ...]:
    """obs[:, 0] = task id, obs[:, 1] = step index; reward = 10 * task + step."""
    t = np.array(steps, dtype=np.float32)
    obs = np.stack([np.full_like(t, task), t], axis=1)
    return (obs, np.zeros((len(t), 1)), 10.0 * task + t, obs + 0.5, np.zeros(len(t)),
            np.full(len(t), task))


def _filled_buffer(capacity: int = 50, steps: int = 20, *, shared: bool = False
                   ) -> MultiTaskReplayBuffer:
    buffer = MultiTaskReplayBuffer(N, capacity, 2, 1, seed=0, shared=shared)
    for k in range(N):  # in two episodes of unequal length
        buffer.add(k, *_episode(k, range(0, 7)))
        buffer.add(k, *_episode(k, range(7, steps)))
    return buffer


def test_fifo_wraps_and_keeps_the_newest() -> None:
    buffer = _filled_buffer(capacity=8, steps=20)
    assert len(buffer) == 8 * N and buffer.task_sizes().tolist() == [8] * N
    assert sorted(buffer.obs[0, :, 1].tolist()) == list(range(12, 20))
    buffer.add(1, *_episode(1, range(100, 130)))  # longer than the capacity: the newest 8
    assert sorted(buffer.obs[1, :, 1].tolist()) == list(range(122, 130))
    assert buffer.task_sizes().tolist() == [8] * N


def test_each_task_buffer_fills_on_its_own() -> None:
    """With the original's sampler tasks collect different amounts: sizes are per task, and a
    task's batch comes from its own filled part only (empty buffers give zeros, masked out)."""
    buffer = MultiTaskReplayBuffer(N, 50, 2, 1, seed=0)
    buffer.add(0, *_episode(0, range(30)))
    buffer.add(2, *_episode(2, range(3)))
    assert buffer.task_sizes().tolist() == [30, 0, 3]
    batch = buffer.sample_per_task(200)
    assert batch.obs[0, :, 1].max() == 29 and batch.obs[2, :, 1].max() == 2
    assert (batch.obs[2, :, 0] == 2).all() and (batch.obs[1] == 0).all()
    assert set(batch.obs[2, :, 1].tolist()) == {0.0, 1.0, 2.0}


def test_shared_buffer_is_one_fifo_over_all_tasks() -> None:
    """The Parameters methods' buffer: one capacity for all tasks, oldest transitions out
    first whichever task collected them."""
    buffer = MultiTaskReplayBuffer(N, 10, 2, 1, seed=0, shared=True)
    buffer.add(0, *_episode(0, range(6)))
    buffer.add(1, *_episode(1, range(3)))
    buffer.add(2, *_episode(2, range(4)))  # 13 transitions: task 0's first 3 are gone
    assert len(buffer) == 10 and buffer.task_sizes().tolist() == [3, 3, 4]
    assert sorted(buffer.obs[0, buffer.task[0] == 0, 1].tolist()) == [3, 4, 5]


def test_per_task_batches_come_from_the_tasks_own_buffer() -> None:
    batch = _filled_buffer().sample_per_task(16)
    assert batch.obs.shape == (N, 16, 2) and batch.obs.dtype == torch.float32
    for k in range(N):
        assert (batch.obs[k, :, 0] == k).all()
        assert (batch.task_ids[k] == k).all()
        torch.testing.assert_close(batch.rewards[k], 10.0 * k + batch.obs[k, :, 1])


def test_mixed_batches_label_each_sample_with_its_task() -> None:
    batch = _filled_buffer(shared=True, capacity=200).sample_mixed(300)
    assert batch.obs.shape == (1, 300, 2)
    torch.testing.assert_close(batch.task_ids.float(), batch.obs[..., 0])
    counts = np.bincount(batch.task_ids.flatten().numpy(), minlength=N)
    assert counts.min() > 60  # uniform over all stored transitions


def test_sharing_batch_relabels_other_tasks_with_min_reward() -> None:
    batch = _filled_buffer().sample_with_sharing(8, min_reward=-5.0)
    per_other = 8 // (N - 1)
    assert batch.obs.shape == (N, 8 + (N - 1) * per_other, 2)
    for i in range(N):
        own, shared = batch.obs[i, :8], batch.obs[i, 8:]
        assert (own[:, 0] == i).all()
        sources = shared[:, 0].long().tolist()
        assert sorted(set(sources)) == [j for j in range(N) if j != i]
        assert all(sources.count(j) == per_other for j in range(N) if j != i)
        torch.testing.assert_close(batch.rewards[i, :8], 10.0 * i + own[:, 1])
        assert (batch.rewards[i, 8:] == -5.0).all()
        assert (batch.task_ids[i] == i).all()  # task i's networks learn from all of it


class _FakeCritic:
    """Q1(s, a) = s[1] (the stored step index), so thresholds can be computed by hand."""

    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, ids: torch.Tensor
                 ) -> torch.Tensor:
        return obs[..., 1].unsqueeze(0).expand(2, *ids.shape)


@pytest.mark.parametrize("quantile", [0.0, 0.25, 0.5, 0.9])
def test_quantile_filter_by_hand(quantile: float) -> None:
    batch = _filled_buffer().sample_with_sharing(8, min_reward=0.0)
    weights, kept = sharing_weights(_FakeCritic(), batch, 8, quantile)  # type: ignore[arg-type]
    for i in range(N):
        own_q = sorted(batch.obs[i, :8, 1].tolist())
        k = int(np.floor(8 * quantile))
        threshold = -np.inf if k == 0 else own_q[k - 1]
        expected = [1.0] * 8 + [float(q > threshold) for q in batch.obs[i, 8:, 1].tolist()]
        assert weights[i].tolist() == expected
        assert kept[i].item() == pytest.approx(np.mean(expected[8:]))


def test_memory_estimate_counts_every_array() -> None:
    buffer = MultiTaskReplayBuffer(2, 10, 5, 3, seed=0)
    arrays = [getattr(buffer, name) for name in MultiTaskReplayBuffer._ARRAYS]
    assert MultiTaskReplayBuffer.bytes_needed(2, 10, 5, 3) == sum(a.nbytes for a in arrays)


def test_mixture_rows_sum_to_one() -> None:
    counts = np.array([[5, 3, 2], [0, 10, 0], [1, 1, 8]])
    probs = mixture_probabilities(counts)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs[0].tolist() == [0.5, 0.3, 0.2]
