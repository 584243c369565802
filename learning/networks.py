"""Stacked ensembles of MLPs: M networks computed with one batched matmul per layer.

Every network of the project is an `EnsembleMLP`: N per-task policies are one ensemble of N
members, 2N twin critics one ensemble of 2N members, a multi-head network one member whose last
layer holds all task heads. Members never share parameters, so a loss summed over members gives
each member exactly the gradient it would get alone, and Adam (element-wise) on the stacked tensors
is N independent Adams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ALL_MEMBERS = slice(None)


def select_members(stacked: torch.Tensor, members: slice) -> torch.Tensor:
    """Rows `members` of a stacked (M, ...) parameter; the parameter itself when that is all of
    them, so that backward accumulates straight into its gradient (indexing would add a slice
    node whose backward zero-fills and copies a full-size gradient)."""
    start, stop, step = members.indices(stacked.shape[0])
    if start == 0 and stop == stacked.shape[0] and step == 1:
        return stacked
    return stacked[members]


class EnsembleLinear(nn.Module):
    """M independent affine maps: (M, B, in) -> (M, B, out); `members` picks a subset."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))

    def forward(self, x: torch.Tensor, members: slice = ALL_MEMBERS) -> torch.Tensor:
        bias = select_members(self.bias, members)
        weight = select_members(self.weight, members)
        if weight.shape[0] > 1 and weight.shape[2] == 1:
            return _SingleOutputLinear.apply(bias, x, weight)
        return torch.baddbmm(bias, x, weight)


class _SingleOutputLinear(torch.autograd.Function):
    """`baddbmm(bias, x, weight)` for M > 1 members with one output each (twin-critic heads).

    Batched CPU matmuls with a single output column take slow paths (several times slower): in
    the forward with the weight's default (fan_in, 1, 1) strides, and in autograd's backward (the
    outer product grad @ weight^T and x^T @ grad). Here the forward multiplies by a view of the
    weight with other strides, and the backward computes the same values as a broadcast product
    and a (1, B) @ (B, fan_in) matmul."""

    @staticmethod
    def forward(ctx, bias: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        m, fan_in, _ = weight.shape
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias, x, weight.view(m, 1, fan_in).transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        m, fan_in, _ = weight.shape
        needs_bias, needs_x, needs_weight = ctx.needs_input_grad
        grad_bias = grad.sum(1, keepdim=True) if needs_bias else None
        grad_x = grad * weight.view(m, 1, fan_in) if needs_x else None
        grad_weight = None
        if needs_weight:
            grad_weight = torch.bmm(grad.transpose(1, 2), x).view(m, fan_in, 1)
        return grad_bias, grad_x, grad_weight


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the feature axis with per-member affine parameters."""

    def __init__(self, members: int, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))
        self.eps = eps

    def forward(self, x: torch.Tensor, members: slice = ALL_MEMBERS) -> torch.Tensor:
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return x * select_members(self.weight, members) + select_members(self.bias, members)


def xavier_(weight: torch.Tensor, *, normal: bool, blocks: int = 1) -> None:
    """Xavier-initialise each member's (in, out) matrix, treating the output columns as `blocks`
    separately initialised heads (as if each head were its own nn.Linear)."""
    members, fan_in, out = weight.shape
    fan_out = out // blocks
    with torch.no_grad():
        for b in range(blocks):
            cols = weight[:, :, b * fan_out : (b + 1) * fan_out]
            if normal:
                cols.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
            else:
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                cols.uniform_(-bound, bound)


class EnsembleMLP(nn.Module):
    """M ReLU MLPs of the same shape evaluated together.

    Input (M, B, in) (a broadcast (1, B, in) view is expanded), output (M, B, out).
    `members` evaluates a contiguous subset only (e.g. the Q1 half of twin critics).
    `out_blocks` splits the last layer into equally sized heads for initialisation only.
    """

    def __init__(
        self,
        members: int,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int,
        *,
        layer_norm: bool = False,
        normal_init: bool = False,
        out_blocks: int = 1,
    ) -> None:
        super().__init__()
        self.members = members
        self.in_features = in_features
        self.out_features = out_features
        layers: list[nn.Module] = []
        last = in_features
        for size in hidden_sizes:
            linear = EnsembleLinear(members, last, size)
            xavier_(linear.weight, normal=normal_init)
            layers.append(linear)
            if layer_norm:
                layers.append(EnsembleLayerNorm(members, size))
            layers.append(nn.ReLU(inplace=True))  # saves one activation buffer per layer
            last = size
        head = EnsembleLinear(members, last, out_features)
        xavier_(head.weight, normal=normal_init, blocks=out_blocks)
        layers.append(head)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, members: slice = ALL_MEMBERS) -> torch.Tensor:
        count = len(range(*members.indices(self.members)))
        if x.shape[0] != count:
            x = x.expand(count, *x.shape[1:])
        for layer in self.body:
            if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm)):
                x = layer(x, members)
            else:
                x = layer(x)
        return x
