"""Soft Actor-Critic for N tasks, one gradient step for all tasks at once.

The losses are those of `learning.algorithms.sac_losses`, on a (G, B) batch of groups (see
`learning.nn.heads`). Order per step, as garage's SAC: critics, actor (with the fresh critics),
temperature, Polyak update of the target critics.

Two ways to compute the gradients give the same values: autograd on the losses as written (the
definition, open to extension: extra loss terms, a gradient transform that sees each task's
gradient), and a hand-written backward pass (taped forward passes, `backward` methods) that skips
autograd's graph bookkeeping. `update_path="auto"` takes the hand-written one whenever the update
is inside what it covers (no extension, ReLU networks), else autograd.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from learning.algorithms import sac_losses
from learning.buffers.replay_buffer import TransitionBatch
from learning.nn.distributions import (
    diagonal_gaussian_kl,
    diagonal_gaussian_kl_grad_q,
    gaussian_entropy,
    tanh_gaussian_draw,
    tanh_gaussian_sample,
)
from learning.nn.optimizer import EnsembleAdam, member_views
from learning.policies.task_policy import TaskPolicy
from learning.q_functions.twin_critic import TwinCritic

#: per-task statistics every update reports (means over the task's samples)
STAT_NAMES = (
    "Qf1Loss",
    "Qf2Loss",
    "Qf1",
    "Qf2",
    "QTarget",
    "PolicyLoss",
    "LogPi",
    "Entropy",
    "AlphaLoss",
    "AlphaTemperature",
)


@dataclass(frozen=True)
class SACConfig:
    discount: float = 0.99
    target_update_tau: float = 5e-3
    reward_scale: float = 1.0
    lr: float = 3e-4
    #: None means -|A|
    target_entropy: float | None = None
    #: one temperature per task, or one for all
    per_task_temperature: bool = True
    #: the DnC family differentiates -log_alpha * (...), the SAC family -alpha * (...)
    temperature_loss: Literal["log_alpha", "alpha"] = "log_alpha"
    #: clip each optimizer's gradient norm (per network of an ensemble) to this; None: off
    grad_clip: float | None = None
    #: what DnC's penalty compares: the policies' distributions (KL) or last hidden layers (MSE)
    dnc_penalty: Literal["kl", "representation"] = "kl"


UpdatePath = Literal["auto", "hand", "autograd"]
UPDATE_PATHS: tuple[str, ...] = ("auto", "hand", "autograd")
#: the stages of one update, in order, each with its own optimizer
STAGES = ("critic", "actor", "temperature")


@dataclass
class LossContext:
    """What an extra loss term sees: the algorithm (networks, config), the batch, and the tensors
    of the stage computed so far. Critic stage: `q` (2, G, B) of the batch actions (with
    gradient) and `q_target` (G, B). Actor stage: the policy's `mean`, `log_std`, the
    reparameterised `action` and its `log_pi` (with gradient), and `q_new` (2, G, B), the fresh
    critics on that action."""

    sac: MultiTaskSAC
    batch: TransitionBatch
    q_target: torch.Tensor
    q: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    log_std: torch.Tensor | None = None
    action: torch.Tensor | None = None
    log_pi: torch.Tensor | None = None
    q_new: torch.Tensor | None = None


@dataclass(frozen=True)
class LossTerm:
    """An extra term added to the loss of one stage ("critic" or "actor"). `fn` returns either
    a scalar, added after any gradient transform, or an (N,) vector of per-task terms, which a
    gradient transform sees as part of each task's loss. Its gradient reaches only the stage's
    own parameters (the critic's or the policy's)."""

    stage: Literal["critic", "actor"]
    fn: Callable[[LossContext], torch.Tensor]
    name: str = "extra"


class GradientTransform(Protocol):
    """Combines per-task gradients into the gradient a stage's optimizer steps with (PCGrad is
    one). `per_task[i][k]` is task i's gradient of `params[k]` (zeros where task i has no
    sample); returns one gradient per parameter. Without a transform the gradient is their sum."""

    def __call__(self, stage: str, per_task: list[list[torch.Tensor]],
                 params: list[torch.Tensor]) -> list[torch.Tensor]: ...


@dataclass(frozen=True)
class Extensions:
    """Additions to the SAC update; any of them runs the update on autograd."""

    loss_terms: Sequence[LossTerm] = ()
    gradient_transform: GradientTransform | None = None
    #: the stages the transform applies to (the others sum the per-task gradients)
    transform_stages: tuple[str, ...] = STAGES
    #: the per-task gradients: "vmap" (one batched backward pass) or "loop" (N passes)
    per_task_grads: Literal["vmap", "loop"] = "vmap"
    #: each task's loss: its share of the batch loss, or the mean over its own samples (PCGrad)
    per_task_reduction: Literal["share", "mean"] = "share"

    def __bool__(self) -> bool:
        return bool(self.loss_terms) or self.gradient_transform is not None


class TaskStatistics:
    """Running per-task sums of named statistics, averaged at read-out (one epoch's updates)."""

    def __init__(self, names: tuple[str, ...], num_tasks: int) -> None:
        self.names = names
        self.num_tasks = num_tasks
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.names), self.num_tasks, dtype=torch.float64)
        self.counts = torch.zeros(len(self.names), self.num_tasks, dtype=torch.float64)

    @torch.no_grad()
    def add(
        self, values: torch.Tensor, task_ids: torch.Tensor, weights: torch.Tensor | None,
        first: int = 0,
    ) -> None:
        """values (K, G, B) of the K names from `first` on, for samples with task_ids (G, B)
        and optional weights (G, B)."""
        rows = slice(first, first + values.shape[0])
        flat_ids = task_ids.reshape(-1)
        flat = values.reshape(values.shape[0], -1).double()
        w = torch.ones_like(flat[0]) if weights is None else weights.reshape(-1).double()
        self.sums[rows].index_add_(1, flat_ids, flat * w)
        self.counts[rows].index_add_(1, flat_ids, w.expand_as(flat))

    def means(self) -> dict[str, list[float]]:
        avg = self.sums / self.counts.clamp_min(1e-12)
        avg[self.counts == 0] = float("nan")
        return {name: avg[k].tolist() for k, name in enumerate(self.names)}


class MultiTaskSAC:
    """Twin-critic SAC with automatic temperature for N tasks sharing one update step."""

    def __init__(
        self,
        policy: TaskPolicy,
        critic: TwinCritic,
        num_tasks: int,
        action_dim: int,
        config: SACConfig,
        kl_coeff: torch.Tensor | None = None,
        *,
        update_path: UpdatePath = "auto",
        extensions: Extensions | None = None,
    ) -> None:
        self.policy = policy
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.num_tasks = num_tasks
        self.config = config
        self.target_entropy = (
            -float(action_dim) if config.target_entropy is None else config.target_entropy
        )
        temperatures = num_tasks if config.per_task_temperature else 1
        self.log_alpha = nn.Parameter(torch.zeros(temperatures))
        self.policy_params = list(policy.parameters())
        # per-task members (separate networks, per-task temperatures) can skip a step
        def members(per_task: bool) -> int | None:
            return num_tasks if per_task else None

        clip = config.grad_clip
        self.policy_optimizer = EnsembleAdam(self.policy_params, config.lr,
                                             members(policy.per_task_groups), clip)
        self.critic_optimizer = EnsembleAdam(critic.parameters(), config.lr,
                                             members(critic.groups == num_tasks), clip)
        self.alpha_optimizer = EnsembleAdam([self.log_alpha], config.lr,
                                            members(config.per_task_temperature), clip)
        self._build_member_views()
        #: (N, N) DnC penalty weights; row i weights policy i's KL towards every other policy
        self.kl_coeff = None if kl_coeff is None else kl_coeff.fill_diagonal_(0.0)
        penalty_stats = (("PolicyKL", "PolicyKLPenalty") if config.dnc_penalty == "kl"
                         else ("PolicyRepresentationMSE", "PolicyRepresentationPenalty"))
        self.stats = TaskStatistics(
            STAT_NAMES + (penalty_stats if self.kl_coeff is not None else ()), num_tasks)
        self.extensions = extensions or Extensions()
        if update_path not in UPDATE_PATHS:
            raise ValueError(f"update_path must be one of {UPDATE_PATHS}, got {update_path!r}")
        why_not = self.hand_path_excluded()
        if update_path == "hand" and why_not is not None:
            raise ValueError(f"the hand-written update does not cover {why_not}")
        #: whether `update` computes its gradients by hand (else with autograd)
        self.hand_path = update_path == "hand" or (update_path == "auto" and why_not is None)
        self.update_path = update_path

    def _build_member_views(self) -> None:
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.target_critic.parameters())
        #: per-member slices for Polyak updates of some tasks only (separate critics)
        self._critic_members, self._member_task = member_views(self._critic_params,
                                                               self.num_tasks)
        self._target_members, _ = member_views(self._target_params, self.num_tasks)

    def __getstate__(self) -> dict[str, object]:  # copy.deepcopy and pickle: views rebuilt
        views = ("_critic_params", "_target_params", "_critic_members", "_target_members")
        return {k: v for k, v in self.__dict__.items() if k not in views}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._build_member_views()

    def hand_path_excluded(self) -> str | None:
        """Why the hand-written gradients do not apply to this update (None: they do)."""
        if self.extensions.loss_terms:
            return "extra loss terms"
        if self.extensions.gradient_transform is not None:
            return "a gradient transform"
        if self.kl_coeff is not None and self.config.dnc_penalty != "kl":
            return "the representation penalty"
        if not self.critic.hand_written_backward:
            return f"the critic {type(self.critic).__name__}"
        for name, net in (("policy", self.policy.net), ("critic", self.critic.net)):
            if not net.relu:
                return f"the {name}'s activation {type(net.activations[0]).__name__}"
        return None

    def temperature_index(self, task_ids: torch.Tensor) -> torch.Tensor:
        return task_ids if self.config.per_task_temperature else torch.zeros_like(task_ids)

    def alpha(self) -> torch.Tensor:
        """Current temperature of every task, (N,)."""
        return self.log_alpha.detach().exp().expand(self.num_tasks)

    def check_finite(self, epoch: int) -> None:
        """Stop a diverged run with a message that names what broke (a loss first, then a
        parameter), before the epoch's checkpoint is written."""
        bad = ~torch.isfinite(self.stats.sums) & (self.stats.counts > 0)
        if bad.any():
            k, task = (int(x) for x in bad.nonzero()[0])
            raise FloatingPointError(
                f"{self.stats.names[k]} of task {task} is not finite in epoch {epoch}"
            )
        parts = {"policy": self.policy, "critic": self.critic}
        for name, module in parts.items():
            for pname, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise FloatingPointError(
                        f"{name} parameter {pname} is not finite in epoch {epoch}"
                    )
        if not torch.isfinite(self.log_alpha).all():
            raise FloatingPointError(f"the temperature is not finite in epoch {epoch}")

    def state_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.policy.load_state_dict(state["policy"])  # type: ignore[arg-type]
        self.critic.load_state_dict(state["critic"])  # type: ignore[arg-type]
        self.target_critic.load_state_dict(state["target_critic"])  # type: ignore[arg-type]
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])  # type: ignore[arg-type]
        for name in ("policy_optimizer", "critic_optimizer", "alpha_optimizer"):
            getattr(self, name).load_state_dict(state[name])

    def soft_update_targets(self, tasks: np.ndarray | None = None) -> None:
        """Polyak update of the target critics of `tasks` (bool (N,); None: all)."""
        tau = self.config.target_update_tau
        if tasks is None or tasks.all():
            torch._foreach_lerp_(self._target_params, self._critic_params, tau)
            return
        if self.critic.groups != self.num_tasks:
            raise ValueError("per-task target updates need separate per-task critics")
        chosen = np.flatnonzero(tasks[self._member_task]).tolist()
        if chosen:
            torch._foreach_lerp_([self._target_members[i] for i in chosen],
                                 [self._critic_members[i] for i in chosen], tau)

    def update(self, batch: TransitionBatch, kl_obs: torch.Tensor | None = None,
               tasks: np.ndarray | None = None,
               actor_batches: Sequence[TransitionBatch] = ()) -> None:
        """One gradient step of critics, actor and temperature on `batch` for the tasks in
        `tasks` (bool (N,); None: every task). A task left out gets no Adam step, no Polyak
        update and no statistics, exactly as if it had not been in the batch (its samples still
        go through the batched passes: members never interact). `kl_obs` (B', d): observations
        for the DnC penalty (used when `kl_coeff` is set).

        `actor_batches` (MCAL, autograd): the actor and the temperature step once on each of
        these instead of on `batch`, their loss the mean over the whole batch (every task's
        slice scored by its own task's critics; a slice of weight 0 left out)."""
        if actor_batches and self.update_path == "hand":
            raise ValueError("the hand-written update does not cover separate actor batches")
        if self.hand_path and not actor_batches:
            self._hand_update(batch, kl_obs, tasks)
        else:
            self._autograd_update(batch, kl_obs, tasks, actor_batches)

    def _autograd_update(self, batch: TransitionBatch, kl_obs: torch.Tensor | None,
                         tasks: np.ndarray | None,
                         actor_batches: Sequence[TransitionBatch] = ()) -> None:
        """`update` with autograd on the losses of `sac_losses` (and any extensions)."""
        cfg = self.config
        ids, weights = batch.task_ids, batch.weights
        alpha = self.log_alpha.detach().exp()[self.temperature_index(ids)]
        with torch.no_grad():
            next_mean, next_log_std = self.policy(batch.next_obs, ids)
            next_action, next_log_pi = tanh_gaussian_sample(next_mean, next_log_std)
            next_q = self.target_critic(batch.next_obs, next_action, ids).min(0).values
            q_target = sac_losses.soft_target(batch.rewards, batch.terminals, next_q,
                                              next_log_pi, alpha, discount=cfg.discount,
                                              reward_scale=cfg.reward_scale)
        ctx = LossContext(self, batch, q_target)

        ctx.q = q = self.critic(batch.obs, batch.actions, ids)
        self._step("critic", sac_losses.critic_terms(q, q_target), weights, ids, ctx,
                   self._critic_params, self.critic_optimizer, tasks)
        with torch.no_grad():
            q_diff = q.detach() - q_target
            critic_values = [q_diff[0].square(), q_diff[1].square(), q[0].detach(),
                             q[1].detach(), q_target]
        if actor_batches:
            self._record(critic_values, ids, weights, tasks)
            for actor_batch in actor_batches:
                actor_ctx = LossContext(self, actor_batch, q_target)
                w = actor_batch.weights
                groups = actor_batch.task_ids.shape[0] if w is None else int((w.sum(1) > 0).sum())
                values = self._actor_and_temperature(actor_batch, None, None, actor_ctx,
                                                     1.0 / max(groups, 1))
                self._record(values, actor_batch.task_ids, actor_batch.weights, None,
                             first=len(critic_values))
        else:
            values = self._actor_and_temperature(batch, kl_obs, tasks, ctx)
            self._record(critic_values + values, ids, weights, tasks)
        self.soft_update_targets(tasks)

    def _actor_and_temperature(self, batch: TransitionBatch, kl_obs: torch.Tensor | None,
                               tasks: np.ndarray | None, ctx: LossContext, scale: float = 1.0
                               ) -> list[torch.Tensor]:
        """The actor's and the temperature's steps on `batch` (with the fresh critics); their
        per-sample statistics. `scale` multiplies both losses."""
        cfg = self.config
        ids, weights = batch.task_ids, batch.weights
        alpha_ids = self.temperature_index(ids)
        alpha = self.log_alpha.detach().exp()[alpha_ids]
        ctx.mean, ctx.log_std = mean, log_std = self.policy(batch.obs, ids)
        ctx.action, ctx.log_pi = action, log_pi = tanh_gaussian_sample(mean, log_std)
        ctx.q_new = q_new = self.critic(batch.obs, action, ids)
        q_min = q_new.min(0).values
        policy_per_sample = sac_losses.actor_terms(log_pi, q_min, alpha)
        kl_stats: list[torch.Tensor] = []
        shared: list[torch.Tensor] = []
        if self.kl_coeff is not None and kl_obs is not None:
            n = self.num_tasks
            kl_ids = torch.arange(n).unsqueeze(1).expand(n, kl_obs.shape[0])
            kl_input = kl_obs.unsqueeze(0).expand(n, *kl_obs.shape)
            if cfg.dnc_penalty == "kl":
                kl = sac_losses.dnc_kl(*self.policy(kl_input, kl_ids))
            else:
                kl = sac_losses.representation_distance(self.policy.net.hidden(kl_input))
            shared.append(sac_losses.dnc_kl_loss(kl, self.kl_coeff))
            kl_stats = [kl.detach().sum(1) / max(n - 1, 1), (self.kl_coeff * kl.detach()).sum(1)]
        self._step("actor", policy_per_sample, weights, ids, ctx, self.policy_params,
                   self.policy_optimizer, tasks, shared, scale)

        log_alpha = self.log_alpha[alpha_ids]
        coef = log_alpha if cfg.temperature_loss == "log_alpha" else log_alpha.exp()
        alpha_per_sample = sac_losses.temperature_terms(coef, log_pi, self.target_entropy)
        self._step("temperature", alpha_per_sample, weights, ids, ctx, [self.log_alpha],
                   self.alpha_optimizer, tasks, scale=scale)
        values = [policy_per_sample.detach(), log_pi.detach(), gaussian_entropy(log_std.detach()),
                  alpha_per_sample.detach(), alpha]
        return values + [per_task[ids] for per_task in kl_stats]

    def _step(self, stage: str, per_sample: torch.Tensor, weights: torch.Tensor | None,
              ids: torch.Tensor, ctx: LossContext, params: list[torch.Tensor],
              optimizer: EnsembleAdam, tasks: np.ndarray | None,
              shared: Sequence[torch.Tensor] = (), scale: float = 1.0) -> None:
        """Differentiate one stage's loss (its per-sample terms reduced as `reduce_loss` and
        multiplied by `scale`, the stage's extra terms, `shared` scalars) with respect to
        `params` and step `optimizer`."""
        ext = self.extensions
        per_task_terms, scalars = [], list(shared)
        for term in ext.loss_terms:
            if term.stage == stage:
                value = term.fn(ctx)
                (scalars if value.dim() == 0 else per_task_terms).append(value)
        transform = ext.gradient_transform if stage in ext.transform_stages else None
        if transform is None:
            loss = scale * sac_losses.reduce_loss(per_sample, weights)
            loss = loss + sum(scalars) + sum(t.sum() for t in per_task_terms)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        else:
            losses = scale * sac_losses.per_task_losses(per_sample, weights, ids,
                                                        self.num_tasks, ext.per_task_reduction)
            losses = losses + sum(per_task_terms)
            per_task = _per_task_grads(losses, params, ext.per_task_grads)
            grads = transform(stage, per_task, params)
            if scalars:
                extra = torch.autograd.grad(sum(scalars), params, allow_unused=True)
                grads = [g if e is None else g + e for g, e in zip(grads, extra, strict=True)]
        _set_grads(params, [torch.zeros_like(p) if g is None else g
                            for g, p in zip(grads, params, strict=True)])
        optimizer.step(tasks)

    def _record(self, values: list[torch.Tensor], ids: torch.Tensor,
                weights: torch.Tensor | None, tasks: np.ndarray | None, first: int = 0) -> None:
        """Add one update's per-sample statistics of the names from `first` on (tasks left out
        of the step excluded)."""
        if tasks is not None and not tasks.all():
            stepped = torch.from_numpy(tasks)[ids].float()
            weights = stepped if weights is None else weights * stepped
        self.stats.add(torch.stack(values), ids, weights, first)

    def _hand_update(self, batch: TransitionBatch, kl_obs: torch.Tensor | None,
                     tasks: np.ndarray | None) -> None:
        """`update` with the gradients computed by hand (taped forward passes, `backward`
        methods): the values autograd gives (tests/test_update_gradients.py holds them to the
        autograd path on every architecture and option), without autograd's graph bookkeeping,
        which costs 15-20% of an update at the paper's sizes."""
        cfg = self.config
        ids = batch.task_ids
        alpha_ids = self.temperature_index(ids)
        alpha = self.log_alpha.detach().exp()[alpha_ids]
        # d(loss)/d(per-sample term): each group's (weighted) mean, summed over groups
        scale = sac_losses.per_sample_scale(batch.weights, ids.shape)

        with torch.no_grad():
            # one policy pass serves the critic target (next_obs) and the actor loss (obs): the
            # policy is stepped last, so both see the same parameters
            b = ids.shape[1]
            means, log_stds, policy_tape = self.policy.forward_taped(
                torch.cat([batch.obs, batch.next_obs], dim=1), ids.repeat(1, 2))
            next_draw = tanh_gaussian_draw(means[:, b:], log_stds[:, b:])
            next_q = self.target_critic(batch.next_obs, next_draw.action, ids).min(0).values
            soft_next = next_q - alpha * next_draw.log_prob
            q_target = cfg.reward_scale * batch.rewards + cfg.discount * (
                1.0 - batch.terminals
            ) * soft_next

            # critics: loss sum_k reduce((Q_k - y)^2)
            q, critic_tape = self.critic.forward_taped(batch.obs, batch.actions, ids)
            q_diff = q - q_target
            _, grads = self.critic.backward(critic_tape, 2.0 * scale * q_diff,
                                            param_grads=True, action_grad=False)
            _set_grads(self._critic_params, grads)
            self.critic_optimizer.step(tasks)

            # actor (with the fresh critics): loss reduce(alpha * log_pi - min_k Q_k(s, a~pi))
            log_std = log_stds[:, :b]
            draw = tanh_gaussian_draw(means[:, :b], log_std)
            q_new, q_new_tape = self.critic.forward_taped(batch.obs, draw.action, ids)
            q_min, twin = q_new.min(0)
            policy_per_sample = alpha * draw.log_prob - q_min
            grad_q = torch.zeros_like(q_new).scatter_(0, twin.unsqueeze(0), -scale.unsqueeze(0))
            grad_action, _ = self.critic.backward(q_new_tape, grad_q, param_grads=False,
                                                  action_grad=True)
            assert grad_action is not None
            grads = self.policy.backward(policy_tape.rows(b),
                                         *draw.backward(grad_action, alpha * scale))
            kl_stats: list[torch.Tensor] = []
            if self.kl_coeff is not None and kl_obs is not None:
                kl, penalty, kl_grads = self._kl_penalty(kl_obs)
                grads = [g + k for g, k in zip(grads, kl_grads, strict=True)]
                kl_stats = [kl, penalty]
            _set_grads(self.policy_params, grads)

            # temperature: loss reduce(-coef * (log_pi + target entropy)), coef = log_alpha or
            # alpha of each sample's task
            entropy_gap = draw.log_prob + self.target_entropy
            if cfg.temperature_loss == "alpha":
                coef, coef_grad = alpha, alpha  # d alpha / d log_alpha = alpha
            else:
                coef, coef_grad = self.log_alpha[alpha_ids], torch.ones_like(alpha)
            alpha_per_sample = -coef * entropy_gap
            grad_coef = -scale * entropy_gap * coef_grad
            self.log_alpha.grad = torch.zeros_like(self.log_alpha).index_add_(
                0, alpha_ids.reshape(-1), grad_coef.reshape(-1))
            self.policy_optimizer.step(tasks)
            self.alpha_optimizer.step(tasks)
            self.soft_update_targets(tasks)
            values = [
                q_diff[0].square(),
                q_diff[1].square(),
                q[0],
                q[1],
                q_target,
                policy_per_sample,
                draw.log_prob,
                gaussian_entropy(log_std),
                alpha_per_sample,
                alpha,
            ]
            values += [per_task[ids] for per_task in kl_stats]  # (N,) -> each sample's task
            self._record(values, ids, batch.weights, tasks)

    def _kl_penalty(self, obs: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """DnC penalty: for policy i, sum_j beta_ij * mean KL(pi_j || pi_i) of the pre-tanh
        Gaussians (per action dimension, averaged over dimensions and the batch). pi_j is held
        fixed: with stacked parameters its gradient would otherwise be stepped too.

        Returns each policy's mean KL to the others, its penalty, and the penalty's gradient."""
        n = self.num_tasks
        ids = torch.arange(n).unsqueeze(1).expand(n, obs.shape[0])
        mean, log_std, tape = self.policy.forward_taped(obs.unsqueeze(0).expand(n, *obs.shape),
                                                        ids)
        p = (mean.unsqueeze(0), log_std.unsqueeze(0))  # pi_j along axis 1
        q = (mean.unsqueeze(1), log_std.unsqueeze(1))  # pi_i along axis 0
        kl = diagonal_gaussian_kl(*p, *q).mean(dim=(-1, -2))  # (N_i, N_j): KL(pi_j || pi_i)
        assert self.kl_coeff is not None
        penalty = (self.kl_coeff * kl).sum(1)
        weight = (self.kl_coeff / mean[0].numel()).view(n, n, 1, 1)
        grad_mean, grad_log_std = diagonal_gaussian_kl_grad_q(*p, *q)
        grads = self.policy.backward(tape, (weight * grad_mean).sum(1),
                                     (weight * grad_log_std).sum(1))
        return kl.sum(1) / max(n - 1, 1), penalty, grads


def _per_task_grads(losses: torch.Tensor, params: list[torch.Tensor],
                    how: Literal["vmap", "loop"]) -> list[list[torch.Tensor]]:
    """Each task's gradient of `params`: per_task[i][k] = d losses[i] / d params[k]."""
    n = losses.shape[0]
    if how == "vmap":  # one backward pass, batched over the N one-hot output gradients
        stacked = torch.autograd.grad(losses, params, torch.eye(n, dtype=losses.dtype),
                                      is_grads_batched=True, allow_unused=True)
        stacked = [torch.zeros(n, *p.shape, dtype=p.dtype) if g is None else g
                   for g, p in zip(stacked, params, strict=True)]
        return [[g[i] for g in stacked] for i in range(n)]
    out = []
    for i in range(n):
        grads = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
        out.append([torch.zeros_like(p) if g is None else g
                    for g, p in zip(grads, params, strict=True)])
    return out


def _set_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g
