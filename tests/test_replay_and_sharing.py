"""Replay buffers and unsupervised data sharing: batch layouts, min_reward relabelling, the
Q-quantile filter (on real twin critics whose twins and tasks differ, against the authors' rule
written out here, and wired through a real uds_dnc run), and the mixture-matrix normalisation."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from conftest import TINY_FLAGS

from experiment_utils import resolve_config
from garage_experiments import build_trainer
from learning.algorithms.learner import sharing_weights
from learning.buffers.replay_buffer import MultiTaskReplayBuffer, TransitionBatch
from learning.nn.heads import Architecture
from learning.q_functions.twin_critic import TwinCritic
from learning.runs.run_logger import mixture_probabilities

N = 3


def _episode(task: int, steps: range) -> tuple[np.ndarray, ...]:
    """obs[:, 0] = task id, obs[:, 1] = step index; reward = 10 * task + step; next_obs =
    obs + 0.5; terminal at step 19 (the last of `_filled_buffer`'s episodes)."""
    t = np.array(steps, dtype=np.float32)
    obs = np.stack([np.full_like(t, task), t], axis=1)
    return (obs, np.zeros((len(t), 1)), 10.0 * task + t, obs + 0.5,
            (t == 19).astype(np.float64), np.full(len(t), task))


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


def test_a_buffer_of_one_keeps_the_newest_transition_and_zero_is_refused() -> None:
    buffer = MultiTaskReplayBuffer(N, 1, 2, 1, seed=0)
    buffer.add(0, *_episode(0, range(5)))
    assert buffer.task_sizes().tolist() == [1, 0, 0] and buffer.obs[0, 0, 1] == 4
    with pytest.raises(ValueError, match="capacity must be positive"):
        MultiTaskReplayBuffer(N, 0, 2, 1, seed=0)


@pytest.mark.parametrize("shared", [False, True])
def test_fifo_slots_follow_the_global_transition_count(shared: bool) -> None:
    """A FIFO of capacity 8: the k-th transition ever stored sits in slot k mod 8 until 8 newer
    ones replace it. Episodes of 3, 5 (ends exactly at the boundary), 8, 11 (longer than the
    capacity, from a non-zero pointer), 1 and 7 (wrapping) transitions."""
    buffer = MultiTaskReplayBuffer(N, 8, 2, 1, seed=0, shared=shared)
    total = 0
    for length in (3, 5, 8, 11, 1, 7):
        buffer.add(0, *_episode(0, range(total, total + length)))
        total += length
        expected = {k % 8: k for k in range(max(0, total - 8), total)}  # newest per slot
        assert buffer.ptr[0] == total % 8 and buffer.task_sizes()[0] == min(total, 8)
        for slot, k in expected.items():
            assert buffer.obs[0, slot, 1] == k and buffer.rewards[0, slot] == k
            assert buffer.next_obs[0, slot, 1] == k + 0.5


@pytest.mark.parametrize("shared", [False, True])
def test_rollback_restores_what_the_epoch_overwrote(shared: bool) -> None:
    """A stopped run returns its buffers to the last finished epoch: after mark(), episodes
    that wrap around and overwrite old transitions (and a draw from the RNG) are undone
    exactly."""
    buffer = MultiTaskReplayBuffer(N, 8, 2, 1, seed=0, shared=shared)
    buffer.add(0, *_episode(0, range(6)))
    buffer.add(1, *_episode(1, range(3)))
    before = {name: getattr(buffer, name).copy() for name in buffer.array_names}
    ptr, sizes = buffer.ptr.copy(), buffer.sizes.copy()
    buffer.mark()
    draw = buffer.rng.integers(0, 1000, size=5)
    buffer.add(0, *_episode(0, range(100, 105)))  # wraps: overwrites slots 6, 7, 0, 1, 2
    buffer.add(0, *_episode(0, range(200, 211)))  # longer than the capacity
    buffer.add(2, *_episode(2, range(300, 304)))
    buffer.rollback()
    for name, values in before.items():  # the filled part (slots past a size are unused)
        for g, size in enumerate(sizes.tolist()):
            np.testing.assert_array_equal(getattr(buffer, name)[g, :size], values[g, :size],
                                          err_msg=name)
    np.testing.assert_array_equal(buffer.ptr, ptr)
    np.testing.assert_array_equal(buffer.sizes, sizes)
    np.testing.assert_array_equal(buffer.rng.integers(0, 1000, size=5), draw)


def test_a_task_with_one_transition_always_samples_it() -> None:
    per_task = MultiTaskReplayBuffer(N, 8, 2, 1, seed=0)
    shared = MultiTaskReplayBuffer(N, 8, 2, 1, seed=0, shared=True)
    for buffer in (per_task, shared):
        buffer.add(1, *_episode(1, range(7, 8)))
    assert (per_task.sample_per_task(50).obs[1, :, 1] == 7).all()
    assert (per_task.sample_observations(50).view(N, 50, 2)[1, :, 1] == 7).all()
    assert (shared.sample_mixed(50).obs[0, :, 1] == 7).all()


def test_mixed_batches_reach_every_stored_transition() -> None:
    buffer = MultiTaskReplayBuffer(N, 8, 2, 1, seed=0, shared=True)
    buffer.add(2, *_episode(2, range(3)))
    assert set(buffer.sample_mixed(300).obs[0, :, 1].tolist()) == {0.0, 1.0, 2.0}


def test_a_checkpointed_buffer_loads_back_and_a_wrong_one_is_refused() -> None:
    full = _filled_buffer(capacity=20, steps=20)  # every buffer exactly at capacity
    state = full.state_dict()
    again = MultiTaskReplayBuffer(N, 20, 2, 1, seed=0)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.obs, full.obs)
    assert again.task_sizes().tolist() == [20] * N
    with pytest.raises(ValueError, match="holds 3 buffers, expected 2"):
        MultiTaskReplayBuffer(2, 20, 2, 1, seed=0).load_state_dict(state)
    state["sizes"] = np.array([3, 21, 5])
    with pytest.raises(ValueError, match="holds 21 transitions in a buffer, capacity 20"):
        again.load_state_dict(state)


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
    torch.testing.assert_close(batch.rewards, 10.0 * batch.obs[..., 0] + batch.obs[..., 1])


def test_mixed_batches_are_uniform_over_transitions_not_tasks() -> None:
    """A task that collected more holds more of the shared buffer and of its batches: tasks
    holding 60 / 30 / 10 transitions get shares 0.6 / 0.3 / 0.1 (binomial sd <= 0.009 at 3000
    draws; uniform over tasks would give 1/3 each)."""
    buffer = MultiTaskReplayBuffer(N, 200, 2, 1, seed=0, shared=True)
    for task, size in enumerate([60, 30, 10]):
        buffer.add(task, *_episode(task, range(size)))
    shares = np.bincount(buffer.sample_mixed(3000).task_ids.flatten().numpy(), minlength=N) / 3000
    np.testing.assert_allclose(shares, [0.6, 0.3, 0.1], atol=0.04)


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
        # the shared transitions keep what was stored: next observation and terminal flag
        torch.testing.assert_close(batch.next_obs[i], batch.obs[i] + 0.5)
        torch.testing.assert_close(batch.terminals[i], (batch.obs[i, :, 1] == 19).float())


SHARE_N, SHARE_OBS, SHARE_ACT, SHARE_B = 4, 3, 2, 16


def _varied_buffer(seed: int = 0) -> MultiTaskReplayBuffer:
    """SHARE_N tasks of 60 transitions each: obs = (task id, two normal draws), uniform
    actions, so a random critic's Q values spread out and the filter has something to cut."""
    rng = np.random.default_rng(seed)
    buffer = MultiTaskReplayBuffer(SHARE_N, 100, SHARE_OBS, SHARE_ACT, seed=seed)
    for k in range(SHARE_N):
        obs = np.concatenate([np.full((60, 1), k), rng.normal(size=(60, SHARE_OBS - 1))], 1)
        buffer.add(k, obs, rng.uniform(-1, 1, (60, SHARE_ACT)), rng.normal(size=60),
                   obs + 0.1, np.zeros(60), np.full(60, k))
    return buffer


def _distinct_critic(seed: int = 0) -> TwinCritic:
    """Real separate twin critics whose twins and tasks differ: every member is its own random
    draw, and the Q2 heads are negated, so min(Q1, Q2) is far from Q1 and picking the wrong
    twin or the wrong task's critic changes which transitions pass."""
    torch.manual_seed(seed)
    critic = TwinCritic(Architecture.SEPARATE, SHARE_N, SHARE_OBS, SHARE_ACT, [16, 16])
    with torch.no_grad():
        critic.net.body[-1].weight[SHARE_N:].neg_()
        critic.net.body[-1].bias[SHARE_N:].fill_(0.3)
    return critic


def _member_q(critic: TwinCritic, member: int, obs: torch.Tensor, actions: torch.Tensor
              ) -> np.ndarray:
    """One ensemble member's Q on (B, d) inputs, by plain matmuls over its own weights (member
    m < N is Q1 of task m, N + m is Q2 of task m: the layout tests/test_math.py pins)."""
    linears = [m for m in critic.net.body if hasattr(m, "weight")]
    with torch.no_grad():
        h = torch.cat([obs, actions], dim=-1).double()
        for depth, lin in enumerate(linears):
            h = h @ lin.weight[member].double() + lin.bias[member, 0].double()
            if depth < len(linears) - 1:
                h = h.relu()
    return h[:, 0].numpy()


def _uds_rule(own_q: np.ndarray, shared_q: np.ndarray, quantile: float) -> np.ndarray:
    """The authors' UDS sharing filter written out: with q = 0 share everything,
    else keep a shared transition when its Q beats the value at index floor(n * q) of
    [-inf] + sorted(Q on the own batch)."""
    if quantile == 0.0:
        return np.ones(len(shared_q))
    threshold = ([-math.inf, *sorted(own_q.tolist())])[math.floor(len(own_q) * quantile)]
    return (shared_q > threshold).astype(np.float64)


def _expected_weights(critic: TwinCritic, obs: torch.Tensor, actions: torch.Tensor, own: int,
                      quantile: float, score: Callable[[int], np.ndarray] | None = None
                      ) -> np.ndarray:
    """(N, B') weights the UDS rule gives a sharing batch when row i is scored with task i's Q1
    (or with `score(i)`, the per-sample scores of row i under some other rule)."""
    rows = []
    for i in range(obs.shape[0]):
        q = _member_q(critic, i, obs[i], actions[i]) if score is None else score(i)
        rows.append(np.concatenate([np.ones(own), _uds_rule(q[:own], q[own:], quantile)]))
    return np.stack(rows)


@pytest.mark.parametrize("quantile", [0.0, 0.25, 0.5, 0.9])
def test_quantile_filter_scores_with_the_tasks_own_q1(quantile: float) -> None:
    """sharing_weights keeps exactly the shared transitions the authors' rule keeps when row i
    is scored by task i's Q1; scoring with Q2, min(Q1, Q2) or task i+1's Q1 would keep others
    (checked, so a wrong twin or a wrong task's critic cannot pass)."""
    buffer, critic = _varied_buffer(), _distinct_critic()
    batch = buffer.sample_with_sharing(SHARE_B, min_reward=-1.0)
    weights, kept = sharing_weights(critic, batch, SHARE_B, quantile)
    expected = _expected_weights(critic, batch.obs, batch.actions, SHARE_B, quantile)
    np.testing.assert_array_equal(weights.numpy(), expected)
    np.testing.assert_allclose(kept.numpy(), expected[:, SHARE_B:].mean(1), rtol=1e-6)
    if quantile == 0.0:
        return
    shared = expected[:, SHARE_B:]
    assert 0.0 < shared.mean() < 1.0  # the filter cuts some, not all

    def q(member: int, i: int) -> np.ndarray:
        return _member_q(critic, member, batch.obs[i], batch.actions[i])

    wrong_rules: dict[str, Callable[[int], np.ndarray]] = {
        "Q2": lambda i: q(SHARE_N + i, i),
        "min(Q1, Q2)": lambda i: np.minimum(q(i, i), q(SHARE_N + i, i)),
        "next task's Q1": lambda i: q((i + 1) % SHARE_N, i),
    }
    for name, rule in wrong_rules.items():
        other = _expected_weights(critic, batch.obs, batch.actions, SHARE_B, quantile, rule)
        assert not np.array_equal(other, expected), f"{name} keeps the same transitions"


@pytest.mark.parametrize("quantile", [0.25, 0.5, 0.9])
def test_a_shared_transition_tied_with_the_threshold_is_not_kept(quantile: float) -> None:
    """The authors' rule keeps Q > threshold, strictly. Offered copies of the own batch tie with it
    exactly: of B copies, those above the floor(B q)-th smallest pass, B - floor(B q) of them
    (a >= filter would keep one more)."""
    critic = _distinct_critic()
    buffer = _varied_buffer()  # its first SHARE_B transitions of a task are distinct draws
    obs = torch.from_numpy(buffer.obs[:, :SHARE_B]).repeat(1, 2, 1)
    batch = TransitionBatch(
        obs=obs, actions=torch.from_numpy(buffer.actions[:, :SHARE_B]).repeat(1, 2, 1),
        rewards=torch.zeros(SHARE_N, 2 * SHARE_B), next_obs=obs,
        terminals=torch.zeros(SHARE_N, 2 * SHARE_B),
        task_ids=torch.arange(SHARE_N).view(-1, 1).expand(SHARE_N, 2 * SHARE_B))
    weights, kept = sharing_weights(critic, batch, SHARE_B, quantile)
    passing = SHARE_B - math.floor(SHARE_B * quantile)
    assert weights[:, SHARE_B:].sum(1).tolist() == [passing] * SHARE_N
    np.testing.assert_allclose(kept.numpy(), passing / SHARE_B)


class _RecordedUpdate(NamedTuple):
    batch: TransitionBatch
    expected: np.ndarray  # weights by the authors' rule with the critic of that moment
    tasks: np.ndarray | None


def _uds_run(quantile: float, tmp_path: Path) -> tuple[list[_RecordedUpdate], list[int],
                                                      list[dict[str, str]]]:
    """A tiny real uds_dnc run on PointReachMT4-v0 built from the command line's flags. Every
    update's batch is recorded together with the weights the authors' rule gives it with the
    critic as it is then; returns the records, the record count at the end of each epoch's
    round, and progress.csv."""
    log_dir = tmp_path / f"uds_q{quantile}"
    log_dir.mkdir()
    config = resolve_config(["uds_dnc", "--env=PointReachMT4-v0", *TINY_FLAGS,
                             "--sharing_quantile", str(quantile)])
    trainer = build_trainer(config, str(log_dir), stdout=False)
    sac, learner = trainer.learner.sac, trainer.learner
    records: list[_RecordedUpdate] = []
    rounds: list[int] = []
    update, train_round = sac.update, learner.train_round

    def recording_update(batch: TransitionBatch, kl_obs: torch.Tensor | None = None,
                         tasks: np.ndarray | None = None, actor_batches: tuple = ()) -> None:
        expected = _expected_weights(sac.critic, batch.obs, batch.actions,
                                     learner.buffer_batch_size, quantile)
        records.append(_RecordedUpdate(batch, expected, tasks))
        update(batch, kl_obs, tasks, actor_batches)

    def recording_round(*args: object, **kwargs: object) -> None:
        train_round(*args, **kwargs)  # type: ignore[arg-type]
        rounds.append(len(records))

    sac.update = recording_update  # type: ignore[method-assign]
    learner.train_round = recording_round  # type: ignore[method-assign]
    try:
        trainer.train()
    finally:
        trainer.close()
    with open(log_dir / "progress.csv") as f:
        return records, rounds, list(csv.DictReader(f))


def test_uds_run_relabels_and_filters_as_the_spec_says(tmp_path: Path) -> None:
    """Through the real builder: shared rewards carry PointReach's documented min_reward (-1),
    every update's weights are the authors' rule on task i's Q1, some but not all shared
    transitions pass at quantile 0.5, and the logged SharedData is the epoch's kept share."""
    records, rounds, rows = _uds_run(0.5, tmp_path)
    own = 8  # TINY_FLAGS' --buffer_batch_size
    assert records and len(rows) == len(rounds) == 2
    for record in records:
        assert record.batch.obs.shape[:2] == (4, own + 3 * (own // 3))
        # docs/environments.md: PointReach's min_reward is -1
        assert (record.batch.rewards[:, own:] == -1.0).all()
        assert record.batch.weights is not None
        np.testing.assert_array_equal(record.batch.weights.numpy(), record.expected)
    kept = np.stack([r.expected[:, own:].mean(1) for r in records])  # (updates, N)
    assert 0.0 < kept.mean() < 1.0
    start = 0
    for row, end in zip(rows, rounds, strict=True):
        assert all(r.tasks is None for r in records[start:end])  # every task steps: plain mean
        for i in range(4):
            assert float(row[f"Train/LocalPolicy{i}/SharedData"]) == pytest.approx(
                kept[start:end, i].mean(), rel=1e-6)
        start = end


def test_sharing_quantile_flag_changes_what_is_kept(tmp_path: Path) -> None:
    """The same seed gives the same first batch and critic, so the first update's kept set must
    shrink strictly as --sharing_quantile grows: 0 keeps everything, 0.9 a strict subset of 0.5's
    (a flag that did not reach the filter would keep the same set)."""
    first = {q: _uds_run(q, tmp_path)[0][0] for q in (0.0, 0.5, 0.9)}
    own = 8
    for q in (0.5, 0.9):
        torch.testing.assert_close(first[q].batch.obs, first[0.0].batch.obs)
    masks = {}
    for q, record in first.items():  # what the product kept, not what the rule says
        assert record.batch.weights is not None
        masks[q] = record.batch.weights[:, own:].numpy().astype(bool)
    assert masks[0.0].all()
    assert (masks[0.5] <= masks[0.0]).all() and masks[0.5].sum() < masks[0.0].sum()
    assert (masks[0.9] <= masks[0.5]).all() and masks[0.9].sum() < masks[0.5].sum()
    assert masks[0.9].any()


def test_memory_estimate_counts_every_array() -> None:
    """Every array the buffer allocates, found on the object (not from its own list): float32
    obs, next_obs (5), actions (3), reward, terminal and int16 acting policy and task id: 2
    buffers x 10 x (4 (2 * 5 + 3 + 2) + 2 + 2) = 1280 bytes."""
    buffer = MultiTaskReplayBuffer(2, 10, 5, 3, seed=0)
    arrays = [a for a in vars(buffer).values() if isinstance(a, np.ndarray) and a.size >= 10]
    assert sum(a.nbytes for a in arrays) == 1280  # the per-transition arrays (2 x 10 or more)
    assert MultiTaskReplayBuffer.bytes_needed(2, 10, 5, 3) == 1280
    shared = MultiTaskReplayBuffer(2, 10, 5, 3, seed=0, shared=True)  # one FIFO for both
    arrays = [a for a in vars(shared).values() if isinstance(a, np.ndarray) and a.size >= 10]
    assert sum(a.nbytes for a in arrays) == 640 == MultiTaskReplayBuffer.bytes_needed(1, 10, 5, 3)
    cds = MultiTaskReplayBuffer(2, 10, 5, 3, seed=0, reward_info_dim=4)  # + 2 x 10 x 4 float32
    arrays = [a for a in vars(cds).values() if isinstance(a, np.ndarray) and a.size >= 10]
    assert sum(a.nbytes for a in arrays) == 1600 == MultiTaskReplayBuffer.bytes_needed(2, 10, 5, 3,
                                                                                     4)


def test_mixture_matrix_is_each_rows_share_of_its_own_steps() -> None:
    """(i, j) = the share of task i's steps acted by policy j: divided by row i's total (not
    the column's or the grand total), and a task with no steps is NaN, not 0 or a uniform row."""
    counts = np.array([[5, 3, 2], [0, 10, 0], [1, 1, 8], [0, 0, 0]])
    probs = mixture_probabilities(counts)
    expected = np.array([[0.5, 0.3, 0.2], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8],
                         [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(probs, expected)
