"""SAC update checks: the critic target on a hand-computed batch, the batched N-task update against
N independent single-task updates, the DnC KL penalty and the gradient-step split."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic


@pytest.fixture
def no_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every reparameterised sample the squashed mean (eps = 0) so updates are exact."""
    monkeypatch.setattr(torch, "randn_like", lambda t: torch.zeros_like(t))


def _constant_networks(sac: MultiTaskSAC, policy_out: list[list[float]], q_out: list[float],
                       target_q_out: list[float]) -> None:
    """Zero all weights; final biases give each member a constant output."""
    with torch.no_grad():
        for module, outs in ((sac.policy.net, policy_out), (sac.critic.net, q_out),
                             (sac.target_critic.net, target_q_out)):
            for p in module.parameters():
                p.zero_()
            module.body[-1].bias.copy_(torch.tensor(outs, dtype=torch.float32).view(
                module.members, 1, -1))


def test_critic_target_by_hand(no_noise: None) -> None:
    n, gamma, scale = 2, 0.9, 2.0
    policy = TaskPolicy(Architecture.SEPARATE, n, 3, 1, [4])
    critic = TwinCritic(Architecture.SEPARATE, n, 3, 1, [4])
    sac = MultiTaskSAC(policy, critic, n, 1, SACConfig(discount=gamma, reward_scale=scale))
    means, log_stds = [0.5, -0.2], [-1.0, 0.0]
    target_q1, target_q2 = [1.0, -3.0], [0.5, 2.0]
    q1, q2 = [0.7, 0.1], [0.2, -0.4]
    _constant_networks(sac, [[means[k], log_stds[k]] for k in range(n)], q1 + q2,
                       target_q1 + target_q2)
    rewards = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -0.5]])
    terminals = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    batch = TransitionBatch(
        obs=torch.randn(n, 3, 3), actions=torch.rand(n, 3, 1) * 2 - 1, rewards=rewards,
        next_obs=torch.randn(n, 3, 3), terminals=terminals,
        task_ids=torch.arange(n).unsqueeze(1).expand(n, 3),
    )
    sac.update(batch)
    stats = sac.stats.means()
    for k in range(n):
        a = math.tanh(means[k])
        log_pi = -log_stds[k] - 0.5 * math.log(2 * math.pi) - math.log(1 - a * a + 1e-6)
        soft_next = min(target_q1[k], target_q2[k]) - 1.0 * log_pi  # alpha = 1 at start
        y = [scale * r + gamma * (1 - d) * soft_next
             for r, d in zip(rewards[k].tolist(), terminals[k].tolist(), strict=True)]
        assert stats["QTarget"][k] == pytest.approx(np.mean(y), rel=1e-5)
        assert stats["Qf1Loss"][k] == pytest.approx(np.mean([(q1[k] - v) ** 2 for v in y]),
                                                    rel=1e-5)
        assert stats["Qf2Loss"][k] == pytest.approx(np.mean([(q2[k] - v) ** 2 for v in y]),
                                                    rel=1e-5)
        assert stats["LogPi"][k] == pytest.approx(log_pi, rel=1e-5)


def _copy_member(src: TaskPolicy | TwinCritic, dst: TaskPolicy | TwinCritic, k: int,
                 members: int) -> None:
    """Copy ensemble member(s) of task k (for twin critics: Q1 and Q2 of task k) into dst."""
    groups = [k] if isinstance(src, TaskPolicy) else [k, members + k]
    with torch.no_grad():
        for ps, pd in zip(src.parameters(), dst.parameters(), strict=True):
            pd.copy_(ps[groups])


def _assert_same_gradients(batched: MultiTaskSAC, single: MultiTaskSAC, k: int, n: int) -> None:
    """Task k's gradients of the last update (left in `.grad`, before the optimizer used them)
    are those of its single-task SAC. Adam's step is invariant to a constant scale of the
    gradient, so comparing parameters after Adam alone would let a batched loss that is, say,
    a mean over tasks instead of a sum pass; the gradients themselves do not."""
    for name in ("policy", "critic"):
        rows = [k] if name == "policy" else [k, n + k]
        whole = getattr(batched, name).parameters()
        part = getattr(single, name).parameters()
        for pw, ps in zip(whole, part, strict=True):
            assert pw.grad is not None and ps.grad is not None, name
            torch.testing.assert_close(pw.grad[rows], ps.grad, atol=1e-6, rtol=1e-4, msg=name)
    assert batched.log_alpha.grad is not None and single.log_alpha.grad is not None
    torch.testing.assert_close(batched.log_alpha.grad[k:k + 1], single.log_alpha.grad,
                               atol=1e-7, rtol=1e-5)


#: which tasks step in each update: the original's sampler gives tasks unequal step counts, and
#: the batched update then steps only the tasks with steps left
MASKS = [None, [True, False, True], [False, True, True], [True, False, False], None]


@pytest.mark.parametrize("masked", [False, True])
def test_batched_update_equals_independent_single_task_updates(no_noise: None, masked: bool
                                                               ) -> None:
    """The batched update equals N separately built single-task SACs, gradient for gradient
    before every optimizer step and parameter for parameter after; a task left out of an update
    gets no Adam step, no Polyak update and no statistics (its single SAC skips it)."""
    torch.manual_seed(0)
    n, obs_dim, act_dim, b = 3, 4, 2, 8
    config = SACConfig(lr=1e-2)
    policy = TaskPolicy(Architecture.SEPARATE, n, obs_dim, act_dim, [16, 16])
    critic = TwinCritic(Architecture.SEPARATE, n, obs_dim, act_dim, [16, 16])
    batched = MultiTaskSAC(policy, critic, n, act_dim, config)
    singles = []
    for k in range(n):
        p1 = TaskPolicy(Architecture.SEPARATE, 1, obs_dim, act_dim, [16, 16])
        c1 = TwinCritic(Architecture.SEPARATE, 1, obs_dim, act_dim, [16, 16])
        _copy_member(policy, p1, k, n)
        _copy_member(critic, c1, k, n)
        singles.append(MultiTaskSAC(p1, c1, 1, act_dim, config))
    masks = MASKS if masked else [None] * 3
    for mask in masks:
        tasks = None if mask is None else np.array(mask)
        batch = TransitionBatch(
            obs=torch.randn(n, b, obs_dim), actions=torch.rand(n, b, act_dim) * 2 - 1,
            rewards=torch.randn(n, b), next_obs=torch.randn(n, b, obs_dim),
            terminals=(torch.rand(n, b) < 0.2).float(),
            task_ids=torch.arange(n).unsqueeze(1).expand(n, b),
        )
        batched.update(batch, tasks=tasks)
        for k, single in enumerate(singles):
            if tasks is not None and not tasks[k]:
                continue
            single.update(TransitionBatch(
                obs=batch.obs[k:k + 1], actions=batch.actions[k:k + 1],
                rewards=batch.rewards[k:k + 1], next_obs=batch.next_obs[k:k + 1],
                terminals=batch.terminals[k:k + 1], task_ids=torch.zeros(1, b, dtype=torch.long),
            ))
            _assert_same_gradients(batched, single, k, n)
    for k, single in enumerate(singles):
        for name, mod in (("policy", "policy"), ("critic", "critic"),
                          ("target", "target_critic")):
            whole = getattr(batched, mod)
            part = getattr(single, mod)
            rows = [k] if name == "policy" else [k, n + k]
            for pw, ps in zip(whole.parameters(), part.parameters(), strict=True):
                torch.testing.assert_close(pw[rows], ps, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched.log_alpha[k:k + 1], single.log_alpha,
                                   atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(batched.stats.counts[:, k], single.stats.counts[:, 0])
        for name, value in single.stats.means().items():
            assert batched.stats.means()[name][k] == pytest.approx(value[0], rel=1e-4, abs=1e-5)


#: DnC scenario: 3 tasks, 2 action dims (N != A, so axes cannot be confused), row i of B: the
#: weights of policy i's penalty; per task the constant (mean_0, mean_1, log_std_0, log_std_1)
KL_BETA = [[5.0, 0.3, 0.1], [0.7, 5.0, 0.2], [0.4, 0.9, 5.0]]
KL_PARAMS = [[0.1, -0.4, -1.0, 0.2], [0.6, 0.3, 0.0, -0.5], [-0.3, 0.5, 0.4, -0.2]]


def _hand_kl(p: list[float], q: list[float]) -> float:
    """Mean over the 2 action dims of KL(N_p || N_q), pre-tanh diagonal Gaussians."""
    out = []
    for d in range(2):
        mp, sp, mq, sq = p[d], math.exp(p[2 + d]), q[d], math.exp(q[2 + d])
        out.append(math.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5)
    return float(np.mean(out))


def _hand_penalty(i: int, own: list[float], n: int) -> float:
    """sum_j B[i][j] KL(pi_j || pi_i) with pi_i's parameters `own` (the diagonal term is 0)."""
    return sum(KL_BETA[i][j] * _hand_kl(KL_PARAMS[j], own) for j in range(n) if j != i)


def _dnc_update(kl: bool, n: int = 3, path: str = "hand") -> MultiTaskSAC:
    """One update of n tasks (the scenario's first n) with constant policy outputs, on the
    update's hand-written or autograd path."""
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.SEPARATE, n, 3, 2, [4])
    critic = TwinCritic(Architecture.SEPARATE, n, 3, 2, [4])
    sac = MultiTaskSAC(policy, critic, n, 2, SACConfig(),
                       kl_coeff=torch.tensor(KL_BETA)[:n, :n] if kl else None,
                       update_path=path)  # type: ignore[arg-type]
    _constant_networks(sac, KL_PARAMS[:n], [0.0] * 2 * n, [0.0] * 2 * n)
    batch = TransitionBatch(
        obs=torch.randn(n, 4, 3), actions=torch.zeros(n, 4, 2), rewards=torch.zeros(n, 4),
        next_obs=torch.randn(n, 4, 3), terminals=torch.zeros(n, 4),
        task_ids=torch.arange(n).unsqueeze(1).expand(n, 4),
    )
    sac.update(batch, kl_obs=torch.randn(6, 3) if kl else None)
    return sac


@pytest.mark.parametrize("path", ["hand", "autograd"])
@pytest.mark.parametrize("n", [2, 3])
def test_kl_penalty_by_hand(no_noise: None, n: int, path: str) -> None:
    """Policy i's penalty: sum_j B[i][j] mean-over-dims KL(N_j || N_i); an asymmetric B shows
    which index is the trained policy, PolicyKL is the mean KL to the n - 1 others."""
    stats = _dnc_update(kl=True, n=n, path=path).stats.means()
    for i in range(n):
        assert stats["PolicyKLPenalty"][i] == pytest.approx(_hand_penalty(i, KL_PARAMS[i], n),
                                                            rel=1e-5)
        assert stats["PolicyKL"][i] == pytest.approx(
            np.mean([_hand_kl(KL_PARAMS[j], KL_PARAMS[i]) for j in range(n) if j != i]),
            rel=1e-5)


@pytest.mark.parametrize("path", ["hand", "autograd"])
def test_kl_penalty_gradient_by_finite_differences(no_noise: None, path: str) -> None:
    """The KL term's share of policy i's gradient (the update with it minus the one without) is
    the derivative of the hand-written penalty in pi_i's own outputs; pi_j is held fixed."""
    with_kl, without = _dnc_update(kl=True, path=path), _dnc_update(kl=False, path=path)
    layer_kl, layer = with_kl.policy.net.body[-1], without.policy.net.body[-1]
    assert layer_kl.bias.grad is not None and layer.bias.grad is not None
    got = (layer_kl.bias.grad - layer.bias.grad)[:, 0].double()  # (N, 2A): d/d(mean, log_std)
    h = 1e-6
    for i in range(3):
        expected = []
        for d in range(4):
            up, down = list(KL_PARAMS[i]), list(KL_PARAMS[i])
            up[d] += h
            down[d] -= h
            expected.append((_hand_penalty(i, up, 3) - _hand_penalty(i, down, 3)) / (2 * h))
        assert got[i].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_kl_coeff_values_fill_the_matrix_row_major() -> None:
    from experiment_utils import resolve_config
    from garage_experiments import kl_matrix

    values = [str(v) for v in range(1, 17)]  # PointReachMT4-v0: 4 x 4
    beta = kl_matrix(resolve_config(["dnc_sac", "--kl_coeff", *values]))
    assert beta is not None and beta[1, 2].item() == 7.0 and beta[2, 1].item() == 10.0
    assert kl_matrix(resolve_config(["dnc_sac", "--kl_coeff", "0.5"])).tolist() == [[0.5] * 4] * 4
    assert kl_matrix(resolve_config(["dnc_sac"])) is None


def test_multihead_update_keeps_per_task_temperatures(no_noise: None) -> None:
    """Each task's temperature follows its own samples only. With eps = 0 the sampled action is
    tanh(mean), so log pi is known in closed form and the SAC-family temperature loss
    -alpha (log pi + target entropy) has the gradient
    -(1/B) sum_{b of task k} alpha_k (log pi_b - |A|) in log_alpha_k. Task 1's policy is made
    nearly deterministic (log pi far above the target), so its temperature must rise while
    task 0's (log pi below the target) falls: one Adam step moves each by lr in that direction;
    task 2, absent from the batch, keeps its log_alpha."""
    torch.manual_seed(1)
    n, act, lr = 3, 2, 3e-4
    policy = TaskPolicy(Architecture.MULTIHEAD, n, 4, act, [8])
    critic = TwinCritic(Architecture.MULTIHEAD, n, 4, act, [8])
    with torch.no_grad():  # task 1's log-std head: bias -5, so std ~ 0.007 and log pi ~ +8
        policy.net.body[-1].bias[..., 2 * act + act:4 * act] = -5.0
    sac = MultiTaskSAC(policy, critic, n, act, SACConfig(temperature_loss="alpha", lr=lr))
    start = [0.5, -0.5, 0.2]  # alpha != 1, so d alpha / d log_alpha = alpha is visible
    with torch.no_grad():
        sac.log_alpha.copy_(torch.tensor(start))
    ids = torch.tensor([[0, 0, 1, 1, 0, 1]])  # task 2 absent from the batch
    batch = TransitionBatch(torch.randn(1, 6, 4), torch.zeros(1, 6, act), torch.zeros(1, 6),
                            torch.randn(1, 6, 4), torch.zeros(1, 6), ids)
    with torch.no_grad():  # log pi of a = tanh(mean), by torch.distributions
        mean, log_std = policy(batch.obs, ids)
        log_pi = (torch.distributions.Normal(mean, log_std.exp()).log_prob(mean)
                  - torch.log(1 - torch.tanh(mean) ** 2 + 1e-6)).sum(-1)[0]
    gap = log_pi - act  # log pi + target entropy (-|A|)
    expected_grad = [-(math.exp(start[k]) * gap[ids[0] == k].sum() / 6).item()
                     for k in range(n)]
    assert expected_grad[0] > 0 > expected_grad[1] and expected_grad[2] == 0.0
    sac.update(batch)
    assert sac.log_alpha.grad is not None
    assert sac.log_alpha.grad.tolist() == pytest.approx(expected_grad, rel=1e-5, abs=1e-7)
    assert sac.log_alpha.tolist() == pytest.approx([start[0] - lr, start[1] + lr, start[2]],
                                                   rel=0, abs=1e-7)
    assert sac.stats.means()["LogPi"][:2] == pytest.approx(
        [log_pi[ids[0] == k].mean().item() for k in range(2)], rel=1e-5)
    assert math.isnan(sac.stats.means()["Qf1Loss"][2])


@pytest.mark.parametrize("tasks,batch", [(5, 32), (1, 256)])
def test_thread_count_does_not_change_the_update(tasks: int, batch: int) -> None:
    """Training may switch between 1 and 2 threads (learning.runs.runtime.TrainingThreads): at the
    paper's sizes the results must be bitwise the same either way."""
    obs_dim, act_dim = 23, 6
    torch.manual_seed(0)
    policy = TaskPolicy(Architecture.SEPARATE, tasks, obs_dim, act_dim, [256, 256])
    critic = TwinCritic(Architecture.SEPARATE, tasks, obs_dim, act_dim, [256, 256])
    data = TransitionBatch(
        obs=torch.randn(tasks, batch, obs_dim), actions=torch.rand(tasks, batch, act_dim) * 2 - 1,
        rewards=torch.randn(tasks, batch), next_obs=torch.randn(tasks, batch, obs_dim),
        terminals=torch.zeros(tasks, batch),
        task_ids=torch.arange(tasks).unsqueeze(1).expand(tasks, batch),
    )
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(1)
            sac = MultiTaskSAC(copy.deepcopy(policy), copy.deepcopy(critic), tasks, act_dim,
                               SACConfig())
            for _ in range(3):
                sac.update(data)
            results.append([p.detach().clone() for p in (*sac.policy.parameters(),
                                                         *sac.critic.parameters())])
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)
