"""Adam for stacked ensemble parameters, one Adam per member.

The N per-task networks are stacked along each parameter's first axis (member m belongs to task
m % N: the 2N twin critics are Q1 of tasks 0..N-1, then Q2). With the original's sampler the
tasks get different numbers of gradient steps per round, so a step may skip some tasks: a skipped
member gets no Adam step at all (moments, step count and parameters untouched), and each member's
bias correction uses its own step count. The arithmetic is torch's fused Adam kernel applied to
each member's slice; a parameter with one member (a multi-head or shared network) steps whenever
any task does.

Calling the kernel directly, with the member views gathered once, also avoids `torch.optim.Adam`'s
per-call Python (~45 us for a (256, 256) twin critic, against a ~70 us kernel).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch


class EnsembleAdam:
    """Adam (torch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay) with a step count
    per ensemble member."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: Iterable[torch.Tensor], lr: float,
                 num_tasks: int | None = None, max_grad_norm: float | None = None) -> None:
        """`num_tasks`: the parameters stack per-task members along their first axis (member m
        is task m % num_tasks's); None: every parameter is shared by all tasks.
        `max_grad_norm`: clip the gradient's L2 norm to it before each step, per member (each
        member is one network with its own optimizer in the original), or over all parameters
        when they are shared (torch's clip_grad_norm_: scale by max / (norm + 1e-6) if below 1).
        """
        self.params = list(params)
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        #: (param index, member) of every slice; member -1: the whole parameter, shared
        self._slices: list[tuple[int, int]] = []
        tasks: list[int] = []
        self.steps: list[torch.Tensor] = []
        for k, p in enumerate(self.params):
            if num_tasks is None:
                self._slices.append((k, -1))
                tasks.append(-1)
                self.steps.append(torch.zeros(1))
                continue
            members = p.shape[0]
            if members % num_tasks:
                raise ValueError(f"a parameter with {members} members does not split over "
                                 f"{num_tasks} tasks")
            self._slices += [(k, m) for m in range(members)]
            tasks += [m % num_tasks for m in range(members)]
            self.steps.append(torch.zeros(members))
        self._slice_task = np.array(tasks)
        self._split = [num_tasks is not None] * len(self.params)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._build_views()

    def __getstate__(self) -> dict[str, object]:  # copy.deepcopy and pickle: views rebuilt
        views = ("_p", "_m", "_v", "_s", "_whole_p", "_first_step")
        return {k: v for k, v in self.__dict__.items() if k not in views}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._build_views()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @staticmethod
    def _view(t: torch.Tensor, member: int) -> torch.Tensor:
        return t if member < 0 else t[member]

    def _build_views(self) -> None:
        sl = self._slices
        self._p = [self._view(self.params[k].detach(), m) for k, m in sl]
        self._m = [self._view(self.exp_avg[k], m) for k, m in sl]
        self._v = [self._view(self.exp_avg_sq[k], m) for k, m in sl]
        self._s = [self.steps[k][max(m, 0)] for k, m in sl]
        # while every member of a parameter has taken the same steps, one call steps whole
        # parameters (far fewer tensors for the kernel): each first member's count serves all
        self._whole_p = [p.detach() for p in self.params]
        self._first_step = [s[0] for s in self.steps]
        self._uniform = all(bool((s == s[0]).all()) for s in self.steps)

    def _grads(self) -> list[torch.Tensor]:
        grads: list[torch.Tensor] = []
        for p, split in zip(self.params, self._split, strict=True):
            g = p.grad
            if g is None:
                raise RuntimeError("EnsembleAdam.step needs a gradient for every parameter")
            if split:
                grads.extend(g.unbind(0))
            else:
                grads.append(g)
        return grads

    def selected(self, tasks: np.ndarray | None) -> list[int] | None:
        """Indices of the member slices that step for `tasks` (bool (N,)); None = all."""
        if tasks is None or tasks.all():
            return None
        chosen = np.where(self._slice_task < 0, tasks.any(), tasks[self._slice_task])
        return np.flatnonzero(chosen).tolist()

    @torch.no_grad()
    def clip_grads(self) -> None:
        """Scale each member's gradient (or the whole gradient of shared parameters) so that its
        L2 norm is at most `max_grad_norm`."""
        assert self.max_grad_norm is not None
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            raise RuntimeError("EnsembleAdam.step needs a gradient for every parameter")
        if not self._split[0]:  # shared: one norm over everything
            norm = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads]))  # type: ignore[arg-type]
            scale = (self.max_grad_norm / (norm + 1e-6)).clamp_max(1.0)
            torch._foreach_mul_(grads, scale)  # type: ignore[arg-type]
            return
        sq = sum(g.reshape(g.shape[0], -1).square().sum(1) for g in grads)  # type: ignore
        scale = (self.max_grad_norm / (sq.sqrt() + 1e-6)).clamp_max(1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))  # type: ignore[union-attr]

    @torch.no_grad()
    def step(self, tasks: np.ndarray | None = None) -> None:
        """One Adam step of the members of `tasks` (bool (N,); None: every task)."""
        index = self.selected(tasks)
        if index is not None and not index:
            return
        if self.max_grad_norm is not None:
            self.clip_grads()
        if index is None and self._uniform:  # the same arithmetic on whole parameters
            torch._foreach_add_(self.steps, 1)
            params, grads, m, v, s = (self._whole_p, [p.grad for p in self.params],
                                      self.exp_avg, self.exp_avg_sq, self._first_step)
            if any(g is None for g in grads):
                raise RuntimeError("EnsembleAdam.step needs a gradient for every parameter")
        else:
            params, grads, m, v, s = self._p, self._grads(), self._m, self._v, self._s
            if index is not None:
                params, grads, m, v, s = ([x[i] for i in index] for x in (params, grads, m, v, s))
                self._uniform = False
            torch._foreach_add_(s, 1)
        torch._fused_adam_(
            params, grads, m, v, [], s, lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
            weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False,
        )

    def state_dict(self) -> dict[str, object]:
        return {"lr": self.lr, "exp_avg": [t.clone() for t in self.exp_avg],
                "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
                "steps": [t.clone() for t in self.steps]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        for name in ("exp_avg", "exp_avg_sq", "steps"):
            saved: Sequence[torch.Tensor] = state[name]  # type: ignore[assignment]
            mine = getattr(self, name)
            if len(saved) != len(mine) or any(a.shape != b.shape
                                              for a, b in zip(saved, mine, strict=True)):
                raise ValueError(f"optimizer state {name} does not match the parameters")
            for a, b in zip(mine, saved, strict=True):
                a.copy_(b)
        self._uniform = all(bool((s == s[0]).all()) for s in self.steps)


def member_views(params: Sequence[torch.Tensor], num_tasks: int
                 ) -> tuple[list[torch.Tensor], np.ndarray]:
    """Per-member slices of stacked parameters and each slice's task (see EnsembleAdam)."""
    views: list[torch.Tensor] = []
    tasks: list[int] = []
    for p in params:  # detached views: leaves that share the parameter's storage
        for m, view in enumerate(p.detach().unbind(0)):
            views.append(view)
            tasks.append(m % num_tasks)
    return views, np.array(tasks)
