"""SAC's losses and logged statistics against numbers worked out by hand.

The update's two paths (hand-written gradients and autograd on `learning/algorithms/sac_losses.py`)
are held to each other elsewhere (tests/test_update_gradients.py); that proves the derivatives, not
that the losses are SAC's, and every test here runs on both paths. The expected values come from
the definitions alone (Haarnoja et al. 2018, SAC with automatic
temperature, in the garage conventions the authors' code follows): plain `math` on tiny
linear networks whose weights are chosen numbers, a fixed noise draw, and finite differences of
those hand-written losses for the gradients. Nothing of the product is used for the expected
numbers; the product's objects are only built, given weights, updated once and read back
(statistics, `.grad` of the parameters, parameters after the step).

Conventions pinned (those of the authors' garage-based SAC):
* critic target y = reward_scale * r + discount * (1 - done) * (min(Q1', Q2')(s', a') -
  alpha * log pi(a'|s')), a' ~ pi(.|s') with the current (pre-step) temperature of the task;
* critic loss = plain MSE mean((Q - y)^2), no 1/2 (garage's F.mse_loss);
* actor loss = mean(alpha * log pi(a|s) - min(Q1, Q2)(s, a)) with the freshly stepped critics;
* log pi of a = tanh(u), u ~ N(mean, std): Gaussian log-density of u minus log(1 - a^2 + 1e-6)
  per action dimension (garage's TanhNormal form), summed over dimensions;
* `Entropy` is the entropy of the pre-tanh Gaussian, sum(log_std + 1/2 + log(2 pi)/2);
* temperature loss = mean(-log_alpha * (log pi + target_entropy)) (DnC family) or
  mean(-alpha * (log pi + target_entropy)) (SAC family); default target entropy -|A|;
* Adam with torch's defaults, whose first step moves each parameter by -lr * g / (|g| + 1e-8).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
import torch

from learning.algorithms.sac import MultiTaskSAC, SACConfig
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.heads import Architecture
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

#: garage's TanhNormal: log(1 - tanh(u)^2 + 1e-6); written here, not imported from the product
GARAGE_TANH_EPS = 1e-6
ADAM_EPS = 1e-8
LOG_2PI = math.log(2.0 * math.pi)

# ---- the scenario: 2 tasks, obs dim 1, action dim 1, linear networks, 3 transitions per task ----
#: per task (w_mean, b_mean, w_log_std, b_log_std): mean = w_mean*o + b_mean, and so on
POLICY = [(0.4, 0.1, -0.3, -0.5), (-0.6, 0.2, 0.2, 0.1)]
#: [twin][task] (w_obs, w_action, bias): Q = w_obs*o + w_action*a + bias
CRITIC = [[(0.5, 1.5, 0.2), (-0.3, 0.8, -0.1)], [(0.2, -1.0, 0.4), (0.6, 0.4, 0.3)]]
TARGET = [[(0.3, 1.0, 0.1), (-0.2, 0.5, 0.2)], [(0.1, -0.7, 0.5), (0.4, 0.9, -0.3)]]
OBS = [[0.5, -1.0, 1.5], [0.2, 0.8, -0.4]]
ACTIONS = [[0.3, -0.6, 0.9], [-0.2, 0.5, 0.1]]
REWARDS = [[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]]
NEXT_OBS = [[0.7, -0.2, 1.1], [-0.5, 1.2, 0.3]]
TERMINALS = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
#: the standard-normal noise of every reparameterised draw (both draws of an update use it)
EPS = [[0.3, -1.2, 0.8], [1.1, -0.4, -0.7]]
ALPHA = (0.5, 2.0)  # per-task temperatures before the update
GAMMA, REWARD_SCALE, LR, TAU = 0.9, 2.0, 0.05, 0.1
TARGET_ENTROPY = -1.0  # -|A|
N, B = 2, 3


@pytest.fixture(autouse=True, params=["hand", "autograd"])
def update_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs on both ways the update computes its gradients."""
    global UPDATE_PATH
    UPDATE_PATH = request.param
    yield request.param
    UPDATE_PATH = "hand"


UPDATE_PATH = "hand"


@pytest.fixture(autouse=True)
def float64() -> Iterator[None]:
    """Build every network in float64, so that hand values must match to ~1e-9."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def fix_noise(monkeypatch: pytest.MonkeyPatch, eps: Sequence[Sequence[Sequence[float]]]) -> None:
    """Make every `torch.randn_like` (the product's reparameterisation noise) return `eps`
    (G, B, A)."""
    table = torch.tensor(eps)

    def randn_like(t: torch.Tensor) -> torch.Tensor:
        assert t.shape == table.shape, "the noise draw has an unexpected shape"
        return table.clone().to(t.dtype)

    monkeypatch.setattr(torch, "randn_like", randn_like)


# ---- SAC by hand (plain python) ----

def hand_policy(p: Sequence[float], o: float) -> tuple[float, float]:
    return p[0] * o + p[1], p[2] * o + p[3]


def hand_q(c: Sequence[float], o: float, a: float) -> float:
    return c[0] * o + c[1] * a + c[2]


def hand_draw(mean: float, log_std: float, eps: float) -> tuple[float, float]:
    """a = tanh(u), u = mean + std * eps, and log pi(a) = log N(u; mean, std) - log|da/du|."""
    std = math.exp(log_std)
    u = mean + std * eps
    a = math.tanh(u)
    gaussian = -0.5 * ((u - mean) / std) ** 2 - math.log(std) - 0.5 * LOG_2PI
    return a, gaussian - math.log(1.0 - a * a + GARAGE_TANH_EPS)


def critic_target(k: int, i: int) -> float:
    a, log_pi = hand_draw(*hand_policy(POLICY[k], NEXT_OBS[k][i]), EPS[k][i])
    o = NEXT_OBS[k][i]
    soft = min(hand_q(TARGET[0][k], o, a), hand_q(TARGET[1][k], o, a)) - ALPHA[k] * log_pi
    return REWARD_SCALE * REWARDS[k][i] + GAMMA * (1.0 - TERMINALS[k][i]) * soft


#: every transition of each task takes part (UDS's filter may keep fewer: see KEPT)
ALL = (range(B), range(B))
#: a UDS filter's outcome: the transitions each task keeps (weights 1; the rest weigh 0)
KEPT = ((0, 1), (2,))


def critic_loss(c: Sequence[float], k: int, kept: Sequence[Sequence[int]] = ALL) -> float:
    """Plain MSE of one critic of task k against the target, over the kept transitions."""
    return float(np.mean([(hand_q(c, OBS[k][i], ACTIONS[k][i]) - critic_target(k, i)) ** 2
                          for i in kept[k]]))


def numeric_grad(f: Callable[[list[float]], float], x: Sequence[float], h: float = 1e-6
                 ) -> list[float]:
    """Central differences (float64: ~1e-10 accurate on these smooth functions)."""
    out = []
    for j in range(len(x)):
        up, down = list(x), list(x)
        up[j] += h
        down[j] -= h
        out.append((f(up) - f(down)) / (2 * h))
    return out


def adam_first_step(x: Sequence[float], g: Sequence[float]) -> list[float]:
    """Adam's first step (bias-corrected moments g and g^2)."""
    return [xj - LR * gj / (abs(gj) + ADAM_EPS) for xj, gj in zip(x, g, strict=True)]


def critic_grad(twin: int, k: int, kept: Sequence[Sequence[int]] = ALL) -> list[float]:
    return numeric_grad(lambda c: critic_loss(c, k, kept), CRITIC[twin][k])


def fresh_critics(kept: Sequence[Sequence[int]] = ALL) -> list[list[list[float]]]:
    """The critics after their Adam step: the actor's loss must use these."""
    return [[adam_first_step(CRITIC[j][k], critic_grad(j, k, kept)) for k in range(N)]
            for j in range(2)]


def actor_draws(p: Sequence[float], k: int) -> list[tuple[float, float]]:
    return [hand_draw(*hand_policy(p, OBS[k][i]), EPS[k][i]) for i in range(B)]


def policy_loss(p: Sequence[float], k: int, critics: list[list[list[float]]],
                kept: Sequence[Sequence[int]] = ALL) -> float:
    terms = []
    for i, (a, log_pi) in enumerate(actor_draws(p, k)):
        o = OBS[k][i]
        q_min = min(hand_q(critics[0][k], o, a), hand_q(critics[1][k], o, a))
        if i in kept[k]:
            terms.append(ALPHA[k] * log_pi - q_min)
    return float(np.mean(terms))


def alpha_loss(log_alpha: float, k: int, convention: str,
               kept: Sequence[Sequence[int]] = ALL) -> float:
    coef = log_alpha if convention == "log_alpha" else math.exp(log_alpha)
    draws = actor_draws(POLICY[k], k)
    return float(np.mean([-coef * (draws[i][1] + TARGET_ENTROPY) for i in kept[k]]))


# ---- the product, built and updated once ----

def _set_linear_policy(policy: TaskPolicy, params: Sequence[Sequence[float]]) -> None:
    layer = policy.net.body[-1]
    with torch.no_grad():
        for k, (wm, bm, ws, bs) in enumerate(params):
            layer.weight[k, 0] = torch.tensor([wm, ws])
            layer.bias[k, 0] = torch.tensor([bm, bs])


def _set_linear_critic(critic: TwinCritic, params: list[list[tuple[float, float, float]]]
                       ) -> None:
    layer = critic.net.body[-1]
    with torch.no_grad():
        for j in range(2):  # members: Q1 of tasks 0..N-1, then Q2
            for k, (wo, wa, b) in enumerate(params[j]):
                layer.weight[j * N + k, :, 0] = torch.tensor([wo, wa])
                layer.bias[j * N + k, 0, 0] = b


def _critic_params(critic: TwinCritic, twin: int, k: int) -> list[float]:
    layer = critic.net.body[-1]
    m = twin * N + k
    return [*layer.weight[m, :, 0].tolist(), layer.bias[m, 0, 0].item()]


def _critic_grads(critic: TwinCritic, twin: int, k: int) -> list[float]:
    layer = critic.net.body[-1]
    m = twin * N + k
    assert layer.weight.grad is not None and layer.bias.grad is not None
    return [*layer.weight.grad[m, :, 0].tolist(), layer.bias.grad[m, 0, 0].item()]


def updated_sac(monkeypatch: pytest.MonkeyPatch, convention: str = "log_alpha",
                kept: Sequence[Sequence[int]] | None = None,
                tasks: np.ndarray | None = None) -> MultiTaskSAC:
    """The scenario's SAC after one `update` (with `kept`: UDS weights, 1 on the kept)."""
    policy = TaskPolicy(Architecture.SEPARATE, N, 1, 1, [])
    critic = TwinCritic(Architecture.SEPARATE, N, 1, 1, [])
    config = SACConfig(discount=GAMMA, reward_scale=REWARD_SCALE, lr=LR, target_update_tau=TAU,
                       temperature_loss=convention)  # type: ignore[arg-type]
    sac = MultiTaskSAC(policy, critic, N, 1, config, update_path=UPDATE_PATH)
    _set_linear_policy(policy, POLICY)
    _set_linear_critic(critic, CRITIC)
    _set_linear_critic(sac.target_critic, TARGET)
    with torch.no_grad():
        sac.log_alpha.copy_(torch.tensor([math.log(a) for a in ALPHA]))
    fix_noise(monkeypatch, [[[e] for e in row] for row in EPS])
    sac.update(TransitionBatch(
        obs=col(OBS), actions=col(ACTIONS), rewards=torch.tensor(REWARDS),
        next_obs=col(NEXT_OBS), terminals=torch.tensor(TERMINALS),
        task_ids=torch.arange(N).unsqueeze(1).expand(N, B),
        weights=None if kept is None else torch.tensor(
            [[float(i in kept[k]) for i in range(B)] for k in range(N)]),
    ), tasks=tasks)
    return sac


def col(rows: Sequence[Sequence[float]]) -> torch.Tensor:
    """(G, B) nested lists -> a (G, B, 1) tensor."""
    return torch.tensor(rows).unsqueeze(-1)


def approx(x: float | Sequence[float]) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-12)


# ---- tests ----

@pytest.mark.parametrize("action_dim", [1, 3])
def test_default_target_entropy_is_minus_action_dim(action_dim: int) -> None:
    def build(config: SACConfig) -> MultiTaskSAC:
        return MultiTaskSAC(TaskPolicy(Architecture.SEPARATE, 1, 2, action_dim, []),
                            TwinCritic(Architecture.SEPARATE, 1, 2, action_dim, []), 1,
                            action_dim, config, update_path=UPDATE_PATH)

    assert build(SACConfig()).target_entropy == -action_dim
    assert build(SACConfig(target_entropy=-0.25)).target_entropy == -0.25


def test_scenario_has_no_ties_in_the_twin_minimum() -> None:
    """The finite differences below are valid only away from min(Q1, Q2) ties."""
    critics = fresh_critics()
    for k in range(N):
        for i in range(B):
            a, _ = hand_draw(*hand_policy(POLICY[k], NEXT_OBS[k][i]), EPS[k][i])
            o = NEXT_OBS[k][i]
            assert abs(hand_q(TARGET[0][k], o, a) - hand_q(TARGET[1][k], o, a)) > 1e-2
            a, _ = actor_draws(POLICY[k], k)[i]
            o = OBS[k][i]
            assert abs(hand_q(critics[0][k], o, a) - hand_q(critics[1][k], o, a)) > 1e-2


def test_critic_target_and_losses_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """QTarget, Qf1, Qf2 and the plain-MSE Qf1Loss/Qf2Loss of each task, with its own
    temperature in the soft target and the terminal masking the bootstrap."""
    stats = updated_sac(monkeypatch).stats.means()
    for k in range(N):
        y = [critic_target(k, i) for i in range(B)]
        q1 = [hand_q(CRITIC[0][k], OBS[k][i], ACTIONS[k][i]) for i in range(B)]
        q2 = [hand_q(CRITIC[1][k], OBS[k][i], ACTIONS[k][i]) for i in range(B)]
        assert stats["QTarget"][k] == approx(float(np.mean(y)))
        assert stats["Qf1"][k] == approx(float(np.mean(q1)))
        assert stats["Qf2"][k] == approx(float(np.mean(q2)))
        assert stats["Qf1Loss"][k] == approx(critic_loss(CRITIC[0][k], k))
        assert stats["Qf2Loss"][k] == approx(critic_loss(CRITIC[1][k], k))
    # a terminal transition's target is the scaled reward alone
    assert critic_target(0, 1) == REWARD_SCALE * REWARDS[0][1]


def test_critic_step_descends_the_plain_mse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gradient the critics are stepped with is that of mean((Q - y)^2) (no 1/2), and the
    step is Adam's first step along it."""
    sac = updated_sac(monkeypatch)
    for j in range(2):
        for k in range(N):
            assert _critic_grads(sac.critic, j, k) == pytest.approx(critic_grad(j, k),
                                                                    rel=1e-6, abs=1e-9)
            assert _critic_params(sac.critic, j, k) == approx(fresh_critics()[j][k])


@pytest.mark.parametrize("convention", ["log_alpha", "alpha"])
def test_policy_and_temperature_statistics_by_hand(monkeypatch: pytest.MonkeyPatch,
                                                   convention: str) -> None:
    """PolicyLoss (with the fresh critics), LogPi, Entropy, AlphaLoss and AlphaTemperature of
    each task."""
    stats = updated_sac(monkeypatch, convention).stats.means()
    critics = fresh_critics()
    for k in range(N):
        draws = actor_draws(POLICY[k], k)
        log_stds = [hand_policy(POLICY[k], o)[1] for o in OBS[k]]
        assert stats["PolicyLoss"][k] == approx(policy_loss(POLICY[k], k, critics))
        assert stats["LogPi"][k] == approx(float(np.mean([lp for _, lp in draws])))
        assert stats["Entropy"][k] == approx(float(np.mean([s + 0.5 + 0.5 * LOG_2PI
                                                            for s in log_stds])))
        assert stats["AlphaLoss"][k] == approx(alpha_loss(math.log(ALPHA[k]), k, convention))
        assert stats["AlphaTemperature"][k] == approx(ALPHA[k])
    # the actor is scored by the stepped critics, not the ones the batch was drawn against
    assert stats["PolicyLoss"][0] != approx(policy_loss(POLICY[0], 0, CRITIC))  # type: ignore[arg-type]


def test_policy_step_descends_the_sac_actor_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy's gradient is that of mean(alpha * log pi - min Q) through the reparameterised
    action, with the temperature held fixed and the fresh critics."""
    sac = updated_sac(monkeypatch)
    layer = sac.policy.net.body[-1]
    assert layer.weight.grad is not None and layer.bias.grad is not None
    critics = fresh_critics()
    for k in range(N):
        expected = numeric_grad(lambda p, k=k: policy_loss(p, k, critics), POLICY[k])
        got = [layer.weight.grad[k, 0, 0].item(), layer.bias.grad[k, 0, 0].item(),
               layer.weight.grad[k, 0, 1].item(), layer.bias.grad[k, 0, 1].item()]
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("convention", ["log_alpha", "alpha"])
def test_temperature_step_descends_its_loss(monkeypatch: pytest.MonkeyPatch,
                                            convention: str) -> None:
    """log_alpha's gradient is that of the temperature loss of its own task's samples, and the
    step is Adam's first step along it."""
    sac = updated_sac(monkeypatch, convention)
    assert sac.log_alpha.grad is not None
    for k in range(N):
        g = numeric_grad(lambda x, k=k: alpha_loss(x[0], k, convention), [math.log(ALPHA[k])])
        assert sac.log_alpha.grad[k].item() == pytest.approx(g[0], rel=1e-6, abs=1e-9)
        assert sac.log_alpha[k].item() == approx(adam_first_step([math.log(ALPHA[k])], g)[0])


def test_targets_move_towards_the_fresh_critics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polyak update last: target <- (1 - tau) target + tau critic (after the critic step)."""
    sac = updated_sac(monkeypatch)
    critics = fresh_critics()
    for j in range(2):
        for k in range(N):
            expected = [(1 - TAU) * t + TAU * c
                        for t, c in zip(TARGET[j][k], critics[j][k], strict=True)]
            assert _critic_params(sac.target_critic, j, k) == approx(expected)


def test_log_prob_and_entropy_sum_over_action_dimensions(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """With |A| = 2: LogPi and Entropy sum over dimensions and the default target is -2."""
    means, log_stds = [(0.3, -0.8), (-0.1, 0.5)], [(-0.4, 0.2), (-1.5, 0.1)]
    eps = [[[0.6, -0.9], [1.3, 0.2]], [[-0.5, 0.7], [0.1, -1.4]]]
    policy = TaskPolicy(Architecture.SEPARATE, N, 1, 2, [])
    sac = MultiTaskSAC(policy, TwinCritic(Architecture.SEPARATE, N, 1, 2, []), N, 2,
                       SACConfig(temperature_loss="alpha"), update_path=UPDATE_PATH)
    with torch.no_grad():
        policy.net.body[-1].weight.zero_()
        for k in range(N):
            policy.net.body[-1].bias[k, 0] = torch.tensor([*means[k], *log_stds[k]])
        sac.log_alpha.copy_(torch.tensor([math.log(a) for a in ALPHA]))
    fix_noise(monkeypatch, eps)
    sac.update(TransitionBatch(
        obs=torch.zeros(N, 2, 1), actions=torch.zeros(N, 2, 2), rewards=torch.zeros(N, 2),
        next_obs=torch.zeros(N, 2, 1), terminals=torch.zeros(N, 2),
        task_ids=torch.arange(N).unsqueeze(1).expand(N, 2),
    ))
    stats = sac.stats.means()
    for k in range(N):
        log_pis = [sum(hand_draw(means[k][d], log_stds[k][d], eps[k][i][d])[1] for d in range(2))
                   for i in range(2)]
        entropy = sum(s + 0.5 + 0.5 * LOG_2PI for s in log_stds[k])
        assert stats["LogPi"][k] == approx(float(np.mean(log_pis)))
        assert stats["Entropy"][k] == approx(entropy)
        assert stats["AlphaLoss"][k] == approx(float(np.mean([-ALPHA[k] * (lp - 2.0)
                                                              for lp in log_pis])))


# ---- the direction the temperature moves ----

#: a constant policy head (mean, log_std) whose entropy is above / below the target -1 at eps 0.5
HIGH_ENTROPY, LOW_ENTROPY = (0.0, 0.0), (0.0, -3.0)
DIRECTION_EPS = 0.5


def _constant_heads_sac(architecture: Architecture, heads: Sequence[tuple[float, float]],
                        config: SACConfig) -> MultiTaskSAC:
    """Zero weights; each task's policy outputs its (mean, log_std) head whatever the input."""
    n = len(heads)
    policy = TaskPolicy(architecture, n, 2, 1, [])
    sac = MultiTaskSAC(policy, TwinCritic(architecture, n, 2, 1, []), n, 1, config,
                       update_path=UPDATE_PATH)
    layer = policy.net.body[-1]
    with torch.no_grad():
        layer.weight.zero_()
        if architecture is Architecture.SEPARATE:
            layer.bias[:, 0] = torch.tensor(heads)
        else:  # one member, head k in columns 2k, 2k + 1
            layer.bias[0, 0] = torch.tensor(heads).reshape(-1)
    return sac


def _entropy_gap(head: tuple[float, float]) -> float:
    """log pi + target entropy: negative when the entropy estimate -log pi is above target."""
    return hand_draw(*head, DIRECTION_EPS)[1] + TARGET_ENTROPY


def _batch(task_ids: torch.Tensor) -> TransitionBatch:
    g, b = task_ids.shape
    torch.manual_seed(0)
    return TransitionBatch(
        obs=torch.randn(g, b, 2), actions=torch.rand(g, b, 1) * 2 - 1, rewards=torch.randn(g, b),
        next_obs=torch.randn(g, b, 2), terminals=torch.zeros(g, b), task_ids=task_ids,
    )


@pytest.mark.parametrize("architecture", [Architecture.SEPARATE, Architecture.MULTIHEAD])
@pytest.mark.parametrize("convention", ["log_alpha", "alpha"])
@pytest.mark.parametrize("high_task", [0, 1])
def test_each_task_temperature_moves_against_its_own_entropy_gap(
    monkeypatch: pytest.MonkeyPatch, architecture: Architecture, convention: str, high_task: int
) -> None:
    """One update: alpha goes down for the task whose entropy is above the target, up for the
    one below, in the same batch (multihead: the two tasks' samples mixed in one group)."""
    heads = [LOW_ENTROPY, LOW_ENTROPY]
    heads[high_task] = HIGH_ENTROPY
    assert _entropy_gap(HIGH_ENTROPY) < 0 < _entropy_gap(LOW_ENTROPY)
    sac = _constant_heads_sac(architecture, heads,
                              SACConfig(temperature_loss=convention))  # type: ignore[arg-type]
    if architecture is Architecture.SEPARATE:
        ids = torch.arange(2).unsqueeze(1).expand(2, 3)
    else:
        ids = torch.tensor([[0, 1, 1, 0, 1]])
    fix_noise(monkeypatch, torch.full((*ids.shape, 1), DIRECTION_EPS).tolist())
    sac.update(_batch(ids))
    alpha = sac.alpha().tolist()
    assert alpha[high_task] < 1.0 < alpha[1 - high_task]
    # Adam's first step: exactly lr in log space
    assert math.log(alpha[high_task]) == pytest.approx(-sac.config.lr, rel=1e-6)
    assert math.log(alpha[1 - high_task]) == pytest.approx(sac.config.lr, rel=1e-6)


@pytest.mark.parametrize("convention", ["log_alpha", "alpha"])
def test_shared_temperature_follows_the_mean_entropy_gap(monkeypatch: pytest.MonkeyPatch,
                                                         convention: str) -> None:
    """One temperature for all tasks moves by the batch's mean gap: here two of three samples
    are (slightly) above the target entropy, but the mean is below, so alpha goes up."""
    slightly_high, very_low = (0.0, -2.0), (0.0, -3.5)
    gaps = [_entropy_gap(slightly_high)] * 2 + [_entropy_gap(very_low)]
    assert gaps[0] < 0 < float(np.mean(gaps))
    sac = _constant_heads_sac(Architecture.MULTIHEAD, [slightly_high, very_low], SACConfig(
        temperature_loss=convention, per_task_temperature=False))  # type: ignore[arg-type]
    fix_noise(monkeypatch, [[[DIRECTION_EPS]] * 3])
    sac.update(_batch(torch.tensor([[0, 0, 1]])))
    assert sac.log_alpha.shape == (1,)
    assert sac.log_alpha.item() == pytest.approx(sac.config.lr, rel=1e-6)
    stats = sac.stats.means()
    assert stats["LogPi"][0] == approx(gaps[0] - TARGET_ENTROPY)
    assert stats["LogPi"][1] == approx(gaps[2] - TARGET_ENTROPY)


def test_a_uds_filtered_batch_trains_on_the_kept_transitions_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights 0 drop a transition from every loss: each task's update is the plain SAC update
    on the transitions it kept (each loss a mean over them, not over the offered batch)."""
    sac = updated_sac(monkeypatch, kept=KEPT)
    stats = sac.stats.means()
    critics = fresh_critics(KEPT)
    layer = sac.policy.net.body[-1]
    assert layer.weight.grad is not None and layer.bias.grad is not None
    for k in range(N):
        for twin in range(2):
            assert stats[f"Qf{twin + 1}Loss"][k] == approx(critic_loss(CRITIC[twin][k], k, KEPT))
            assert _critic_grads(sac.critic, twin, k) == pytest.approx(
                critic_grad(twin, k, KEPT), rel=1e-6, abs=1e-9)
        assert stats["PolicyLoss"][k] == approx(policy_loss(POLICY[k], k, critics, KEPT))
        expected = numeric_grad(lambda p, k=k: policy_loss(p, k, critics, KEPT), POLICY[k])
        got = [layer.weight.grad[k, 0, 0].item(), layer.bias.grad[k, 0, 0].item(),
               layer.weight.grad[k, 0, 1].item(), layer.bias.grad[k, 0, 1].item()]
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert stats["AlphaLoss"][k] == approx(alpha_loss(math.log(ALPHA[k]), k, "log_alpha",
                                                          KEPT))
    # the dropped transitions change every number: the filter is not a no-op here
    assert stats["Qf1Loss"][0] != approx(critic_loss(CRITIC[0][0], 0))


def test_a_task_left_out_of_a_weighted_update_has_no_statistics(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With UDS weights and a task that does not step (its buffer still warming up), that
    task's statistics get no samples at all; its next update counts normally."""
    sac = updated_sac(monkeypatch, kept=KEPT, tasks=np.array([True, False]))
    assert sac.stats.counts[0].tolist() == [2.0, 0.0]
    assert math.isnan(sac.stats.means()["Qf1Loss"][1])
    sac.update(TransitionBatch(
        obs=col(OBS), actions=col(ACTIONS), rewards=torch.tensor(REWARDS),
        next_obs=col(NEXT_OBS), terminals=torch.tensor(TERMINALS),
        task_ids=torch.arange(N).unsqueeze(1).expand(N, B)))
    assert sac.stats.counts[0].tolist() == [2.0 + B, B]
    assert all(math.isfinite(v) for v in sac.stats.means()["Qf1Loss"])


def test_divergence_names_the_first_non_finite_statistic_of_a_task_with_samples() -> None:
    sac = MultiTaskSAC(TaskPolicy(Architecture.SEPARATE, 3, 1, 1, []),
                       TwinCritic(Architecture.SEPARATE, 3, 1, 1, []), 3, 1, SACConfig(),
                       update_path=UPDATE_PATH)
    names = sac.stats.names
    sac.stats.counts[:] = torch.tensor([1.0, 0.0, 4.0])  # task 0: a single sample
    sac.stats.sums[names.index("QTarget"), 2] = math.inf
    sac.stats.sums[names.index("Qf2Loss"), 0] = math.nan
    sac.stats.sums[names.index("PolicyLoss"), 1] = math.nan  # task 1 had no samples: ignored
    with pytest.raises(FloatingPointError, match="^Qf2Loss of task 0 is not finite in epoch 7$"):
        sac.check_finite(7)
    sac.stats.sums[names.index("Qf2Loss"), 0] = 0.0
    with pytest.raises(FloatingPointError, match="^QTarget of task 2 is not finite"):
        sac.check_finite(7)
    sac.stats.sums[names.index("QTarget"), 2] = 0.0
    sac.check_finite(7)  # task 1's NaN is not a divergence: nothing was recorded there
