"""The Q-switch, exactly: argmax of task i's Q1 over every policy's mean proposal for observation
i, the chosen proposal's sampled action executed, ties to the lowest index, optional min(Q1, Q2),
re-selection every `policy_sampling_freq` steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.nn.heads import Architecture
from learning.policies.behaviour import OwnPolicy
from learning.policies.qswitch_mixture_policies_wrapper import QSwitch
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

N, OBS, ACT = 4, 3, 2


def _nets(arch: Architecture, seed: int = 0) -> tuple[TaskPolicy, TwinCritic]:
    torch.manual_seed(seed)
    return TaskPolicy(arch, N, OBS, ACT, [16]), TwinCritic(arch, N, OBS, ACT, [16])


def _reference_choice(policy: TaskPolicy, critic: TwinCritic, obs: torch.Tensor,
                      use_min: bool) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Score proposal j for task i one pair at a time, by calling the networks directly."""
    chosen = np.zeros(N, dtype=np.int64)
    means = torch.zeros(N, ACT)
    log_stds = torch.zeros(N, ACT)
    with torch.no_grad():
        for i in range(N):
            best, best_score = -1, -np.inf
            for j in range(N):
                if policy.architecture is Architecture.SEPARATE:
                    mean, log_std = policy(obs[i].view(1, 1, -1).expand(N, 1, OBS),
                                           torch.zeros(N, 1, dtype=torch.long))
                    mean, log_std = mean[j, 0], log_std[j, 0]
                else:
                    mean, log_std = policy(obs[i].view(1, 1, -1), torch.tensor([[j]]))
                    mean, log_std = mean[0, 0], log_std[0, 0]
                a = torch.tanh(mean)
                if critic.architecture is Architecture.SEPARATE:
                    q = critic(obs[i].view(1, 1, -1).expand(N, 1, OBS),
                               a.view(1, 1, -1).expand(N, 1, ACT),
                               torch.arange(N).view(N, 1))[:, i, 0]
                else:
                    q = critic(obs[i].view(1, 1, -1), a.view(1, 1, -1),
                               torch.tensor([[i]]))[:, 0, 0]
                score = q.min().item() if use_min else q[0].item()
                if score > best_score:  # strict: ties keep the lowest index
                    best, best_score, means[i], log_stds[i] = j, score, mean, log_std
            chosen[i] = best
    return chosen, means, log_stds


@pytest.mark.parametrize("arch", [Architecture.SEPARATE, Architecture.MULTIHEAD])
@pytest.mark.parametrize("critic_choice", ["q1", "min"])
def test_qswitch_picks_argmax_and_executes_the_chosen_mean(arch: Architecture,
                                                           critic_choice: str) -> None:
    policy, critic = _nets(arch)
    switch = QSwitch(policy, critic, critic_choice=critic_choice)  # type: ignore[arg-type]
    for trial in range(5):
        obs = torch.randn(N, OBS) * 2
        expected, means, _ = _reference_choice(policy, critic, obs, critic_choice == "min")
        actions, acting = switch.act(obs[None], np.zeros((1, N), dtype=np.int64),
                                     deterministic=True)
        assert acting[0].tolist() == expected.tolist(), f"trial {trial}"
        np.testing.assert_allclose(actions[0], torch.tanh(means).numpy(), atol=1e-6)


@pytest.mark.parametrize("arch", [Architecture.SEPARATE, Architecture.MULTIHEAD])
def test_qswitch_choices_are_not_trivial(arch: Architecture) -> None:
    """Guard for the test above, on its networks and observations: different tasks must choose
    different policies, and Q1 and min(Q1, Q2) must disagree on some task's choice, or the
    pairing check and the critic_choice="min" case would pass for a switch that ignored them."""
    policy, critic = _nets(arch)
    seen = set()
    disagreements = 0
    for _ in range(5):  # the observations the test above draws after _nets(arch)
        obs = torch.randn(N, OBS) * 2
        q1, _, _ = _reference_choice(policy, critic, obs, False)
        low, _, _ = _reference_choice(policy, critic, obs, True)
        seen.update(q1.tolist())
        disagreements += int((q1 != low).sum())
    assert len(seen) > 1
    assert disagreements > 0


def test_qswitch_executes_the_chosen_policys_sampled_action() -> None:
    policy, critic = _nets(Architecture.SEPARATE, seed=3)
    switch = QSwitch(policy, critic)
    obs = torch.randn(N, OBS)
    expected, means, log_stds = _reference_choice(policy, critic, obs, False)
    torch.manual_seed(11)
    actions, acting = switch.act(obs[None], np.zeros((1, N), np.int64), deterministic=False)
    torch.manual_seed(11)
    eps = torch.randn(1, N, ACT)[0]
    assert acting[0].tolist() == expected.tolist()
    np.testing.assert_allclose(actions[0], torch.tanh(means + log_stds.exp() * eps).numpy(),
                               atol=1e-6)
    assert not np.allclose(actions[0], torch.tanh(means).numpy(), atol=1e-3)  # really sampled


def test_ties_go_to_the_lowest_index() -> None:
    policy, critic = _nets(Architecture.SEPARATE)
    with torch.no_grad():
        for p in critic.parameters():
            p.zero_()  # every proposal scores 0
    _, acting = QSwitch(policy, critic).act(torch.randn(1, N, OBS), np.zeros((1, N), np.int64),
                                            True)
    assert acting[0].tolist() == [0] * N


@pytest.mark.parametrize("k, steps", [(3, [1, 2, 3, 6]), (2, [1, 3, 2, 4])])
def test_reselection_every_k_steps(k: int, steps: list[int]) -> None:
    """k = 2 too: the smallest k that holds at all (a switch that only held for k > 2 passed
    with k = 3 alone)."""
    policy, critic = _nets(Architecture.SEPARATE, seed=5)
    switch = QSwitch(policy, critic, sampling_freq=k)
    obs = torch.randn(1, N, OBS)
    _, first = switch.act(obs, np.zeros((1, N), np.int64), True)
    first = first[0]
    assert first[:2].any(), "the holding tasks must start on a non-zero policy to show holding"
    with torch.no_grad():  # flatten the critic: a re-selecting task now picks policy 0
        for p in critic.parameters():
            p.zero_()
    # the first two steps are between selections (hold), the last two are selection steps
    _, second = switch.act(obs, np.array([steps]), True)
    assert second[0].tolist() == [first[0], first[1], 0, 0]


def test_own_policy_acts_with_each_tasks_policy() -> None:
    policy, _ = _nets(Architecture.MULTIHEAD)
    obs = torch.randn(1, N, OBS)
    actions, acting = OwnPolicy(policy).act(obs, np.zeros((1, N), np.int64), True)
    assert acting[0].tolist() == list(range(N))
    with torch.no_grad():
        for i in range(N):
            mean, _ = policy(obs[0, i].view(1, 1, -1), torch.tensor([[i]]))
            np.testing.assert_allclose(actions[0, i], torch.tanh(mean[0, 0]).numpy(), atol=1e-6)


@pytest.mark.parametrize("arch", [Architecture.SEPARATE, Architecture.MULTIHEAD])
@pytest.mark.parametrize("critic_choice", ["q1", "min"])
def test_copies_of_the_task_set_act_like_separate_calls(arch: Architecture,
                                                        critic_choice: str) -> None:
    """Evaluation acts on R copies of the task set at once: same as R one-copy calls."""
    policy, critic = _nets(arch, seed=9)
    obs = torch.randn(3, N, OBS) * 2
    steps = np.zeros((3, N), np.int64)
    for behaviour in (OwnPolicy(policy), QSwitch(policy, critic,
                                                 critic_choice=critic_choice)):  # type: ignore[arg-type]
        together, acting = behaviour.act(obs, steps, True)
        for r in range(3):
            alone, acting_alone = behaviour.act(obs[r:r + 1], steps[r:r + 1], True)
            np.testing.assert_allclose(together[r], alone[0], atol=1e-6)
            assert acting[r].tolist() == acting_alone[0].tolist()


def test_copies_execute_their_chosen_policys_sampled_action() -> None:
    """Collection with R env copies per task samples: each copy's action is its chosen policy's
    mean and std with its own noise (the one-copy sampled test cannot see a copy axis mixed up)."""
    policy, critic = _nets(Architecture.SEPARATE, seed=4)
    obs = torch.randn(3, N, OBS) * 2
    expected = [_reference_choice(policy, critic, obs[r], False) for r in range(3)]
    torch.manual_seed(13)
    actions, acting = QSwitch(policy, critic).act(obs, np.zeros((3, N), np.int64), False)
    torch.manual_seed(13)
    eps = torch.randn(3, N, ACT)
    assert actions.shape == (3, N, ACT)
    for r, (chosen, means, log_stds) in enumerate(expected):
        assert acting[r].tolist() == chosen.tolist()
        np.testing.assert_allclose(actions[r], torch.tanh(means + log_stds.exp() * eps[r]).numpy(),
                                   atol=1e-6)


def test_by_default_every_step_reselects() -> None:
    policy, critic = _nets(Architecture.SEPARATE, seed=5)
    switch = QSwitch(policy, critic)
    obs = torch.randn(1, N, OBS)
    _, first = switch.act(obs, np.zeros((1, N), np.int64), True)
    assert first[0].any()
    with torch.no_grad():  # flatten the critic: a re-selecting task now picks policy 0
        for p in critic.parameters():
            p.zero_()
    _, second = switch.act(obs, np.array([[1, 3, 5, 7]]), True)
    assert second[0].tolist() == [0] * N


@pytest.mark.parametrize("arch", [Architecture.SEPARATE, Architecture.MULTIHEAD])
def test_get_action_is_the_rule_for_one_observation_of_one_task(arch: Architecture) -> None:
    """The single-step API (the original's get_action): the same choice as scoring every pair
    by hand, the chosen policy's sampled action, and the original's agent info."""
    policy, critic = _nets(arch, seed=3)
    torch.manual_seed(4)
    obs = torch.randn(N, OBS)
    chosen, means, log_stds = _reference_choice(policy, critic, obs, use_min=False)
    assert len(set(chosen.tolist())) > 1  # the case distinguishes tasks
    mixture = QSwitch(policy, critic)
    for i in range(N):
        mixture.reset()
        action, info = mixture.get_action(obs[i].numpy(), i, deterministic=True)
        np.testing.assert_allclose(action, torch.tanh(means[i]).numpy(), atol=1e-6)
        assert (info["policy_id"], info["task_id"], info["real_policy_id"]) == (i, i, chosen[i])
        np.testing.assert_allclose(info["mean"], torch.tanh(means[i]).numpy(), atol=1e-6)
        np.testing.assert_allclose(info["log_std"], log_stds[i].numpy(), atol=1e-6)
        mixture.reset()
        torch.manual_seed(10 + i)
        action, _ = mixture.get_action(obs[i], i)
        torch.manual_seed(10 + i)
        eps = torch.randn(ACT)
        expected = torch.tanh(means[i] + log_stds[i].exp() * eps)
        np.testing.assert_allclose(action, expected.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="task must be in"):
        mixture.get_action(obs[0], N)


@pytest.mark.parametrize("freq", [2, 3])
def test_get_action_reselects_every_sampling_freq_steps_of_an_episode(freq: int) -> None:
    policy, critic = _nets(Architecture.SEPARATE, seed=3)
    torch.manual_seed(5)
    observations = torch.randn(40, OBS)
    own = [_reference_choice(policy, critic, o.expand(N, OBS), use_min=False)[0][0]
           for o in observations]
    assert len(set(own)) > 1  # task 0's best proposal changes along the sequence
    mixture = QSwitch(policy, critic, sampling_freq=freq)
    for episode in range(2):
        mixture.reset()
        got = [mixture.get_action(o, 0)[1]["real_policy_id"] for o in observations]
        expected = [own[freq * (t // freq)] for t in range(len(observations))]
        assert got != own  # holding the choice changes something
        assert got == expected, episode
