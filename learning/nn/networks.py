"""Stacked ensembles of MLPs: M networks computed with one batched matmul per layer.

Every network of the project is an `EnsembleMLP`: N per-task policies are one ensemble of N
members, 2N twin critics one ensemble of 2N members, a multi-head network one member whose last
layer holds all task heads. Members never share parameters, so a loss summed over members gives
each member exactly the gradient it would get alone, and Adam (element-wise) on the stacked tensors
is N independent Adams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

ALL_MEMBERS = slice(None)


def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`x @ weight + bias` for stacked (M, in, out) weights. With M > 1 members of one output
    each (twin-critic heads) the weight's default (in, 1, 1) strides send the batched CPU matmul
    down a path several times slower; a view with other strides avoids it."""
    members, fan_in, out = weight.shape
    if members > 1 and out == 1:
        weight = weight.view(members, 1, fan_in).transpose(1, 2)
    return torch.baddbmm(bias, x, weight)


class EnsembleLinear(nn.Module):
    """M independent affine maps: (M, B, in) -> (M, B, out); `members` picks a subset."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))

    def forward(self, x: torch.Tensor, members: slice = ALL_MEMBERS) -> torch.Tensor:
        return affine(x, self.weight[members], self.bias[members])

    def backward(self, x: torch.Tensor, grad: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of (weight, bias) given the layer's input x and its output's gradient."""
        members, fan_in, out = self.weight.shape
        if members > 1 and out == 1:  # (1, B) @ (B, in) per member, not an outer-product bmm
            grad_weight = torch.bmm(grad.transpose(1, 2), x).view(members, fan_in, 1)
        else:
            grad_weight = torch.bmm(x.transpose(1, 2), grad)
        return [grad_weight, grad.sum(1, keepdim=True)]

    def input_grad(self, grad: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Gradient of the input columns `start:` given the output's gradient."""
        members, fan_in, out = self.weight.shape
        if members > 1 and out == 1:
            return grad * self.weight.view(members, 1, fan_in)[:, :, start:]
        return torch.bmm(grad, self.weight[:, start:].transpose(1, 2))


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the feature axis with per-member affine parameters."""

    def __init__(self, members: int, features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))
        self.eps = eps

    def forward(self, x: torch.Tensor, members: slice = ALL_MEMBERS) -> torch.Tensor:
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return x * self.weight[members] + self.bias[members]

    def forward_taped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Output, normalised input and inverse std (what `backward` needs)."""
        centred = x - x.mean(-1, keepdim=True)
        inv_std = (centred.square().mean(-1, keepdim=True) + self.eps).rsqrt()
        normalised = centred * inv_std
        return torch.addcmul(self.bias, normalised, self.weight), normalised, inv_std

    def backward(self, normalised: torch.Tensor, inv_std: torch.Tensor, grad: torch.Tensor
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Input gradient and the (weight, bias) gradients."""
        params = [(grad * normalised).sum(1, keepdim=True), grad.sum(1, keepdim=True)]
        g = grad * self.weight
        centred_g = g - g.mean(-1, keepdim=True)
        x_grad = (centred_g - normalised * (g * normalised).mean(-1, keepdim=True)) * inv_std
        return x_grad, params


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
    """M MLPs of the same shape evaluated together (ReLU hidden units by default).

    Input (M, B, in) (a broadcast (1, B, in) view is expanded), output (M, B, out).
    `members` evaluates a contiguous subset only (e.g. the Q1 half of twin critics).
    `out_blocks` splits the last layer into equally sized heads for initialisation only.
    `activation` builds each hidden layer's activation module; the taped forward pass and its
    hand-written backward exist for ReLU only (`relu`), other activations train with autograd.
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
        activation: Callable[[], nn.Module] = nn.ReLU,
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
            layers.append(activation())
            last = size
        head = EnsembleLinear(members, last, out_features)
        xavier_(head.weight, normal=normal_init, blocks=out_blocks)
        layers.append(head)
        self.body = nn.Sequential(*layers)
        #: (linear, layer norm or None) per layer, the head last without a norm
        self.layers: list[tuple[EnsembleLinear, EnsembleLayerNorm | None]] = []
        #: each hidden layer's activation, applied after its norm
        self.activations: list[nn.Module] = []
        for module in layers:
            if isinstance(module, EnsembleLinear):
                self.layers.append((module, None))
            elif isinstance(module, EnsembleLayerNorm):
                self.layers[-1] = (self.layers[-1][0], module)
            else:
                self.activations.append(module)
        #: every activation is a ReLU: the in-place ReLU and the hand-written backward apply
        self.relu = all(type(a) is nn.ReLU for a in self.activations)

    def forward(self, x: torch.Tensor, members: slice = ALL_MEMBERS) -> torch.Tensor:
        return self._run(x, members, None)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations (M, B, width): the representation the head reads
        (DnC's representation penalty compares them)."""
        return self._run(x, ALL_MEMBERS, None, head=False)

    def forward_taped(self, x: torch.Tensor) -> tuple[torch.Tensor, MLPTape]:
        """All members' output and the tape `backward` differentiates it with."""
        if not self.relu:
            raise ValueError("the taped forward pass and its backward exist for ReLU MLPs only")
        tape = MLPTape()
        return self._run(x, ALL_MEMBERS, tape), tape

    def _run(self, x: torch.Tensor, members: slice, tape: MLPTape | None, head: bool = True
             ) -> torch.Tensor:
        count = len(range(*members.indices(self.members)))
        if x.shape[0] != count:
            x = x.expand(count, *x.shape[1:])
        for k, (linear, norm) in enumerate(self.layers[:-1]):  # plain calls: no module hooks
            if tape is not None:
                tape.inputs.append(x)
            x = linear.forward(x, members)
            if norm is not None and tape is not None:
                x, normalised, inv_std = norm.forward_taped(x)
                tape.norms.append((normalised, inv_std))
            elif norm is not None:
                x = norm.forward(x, members)
            if self.relu:
                x = x.relu_()  # in place: saves one activation buffer per layer
            else:
                x = self.activations[k](x)
        if not head:
            return x
        if tape is not None:
            tape.inputs.append(x)
        return self.layers[-1][0].forward(x, members)

    def backward(
        self, tape: MLPTape, grad: torch.Tensor, *, param_grads: bool = True,
        input_grad_from: int | None = None,
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """Backpropagate the output's gradient through a taped forward pass.

        Returns the gradient of input columns `input_grad_from:` (None when not asked for) and,
        with `param_grads`, the parameter gradients in `parameters()` order (else [])."""
        per_layer: list[list[torch.Tensor]] = [[] for _ in self.layers]
        for k in range(len(self.layers) - 1, 0, -1):
            linear = self.layers[k][0]
            if param_grads:  # a layer's own (weight, bias) come before its norm's
                per_layer[k][:0] = linear.backward(tape.inputs[k], grad)
            # the ReLU output (this layer's input) is positive exactly where the ReLU passed
            grad = linear.input_grad(grad)
            torch.ops.aten.threshold_backward.grad_input(grad, tape.inputs[k], 0, grad_input=grad)
            norm = self.layers[k - 1][1]
            if norm is not None:
                grad, norm_grads = norm.backward(*tape.norms[k - 1], grad)
                if param_grads:
                    per_layer[k - 1] = norm_grads
        first = self.layers[0][0]
        if param_grads:
            per_layer[0][:0] = first.backward(tape.inputs[0], grad)
        input_grad = None if input_grad_from is None else first.input_grad(grad, input_grad_from)
        return input_grad, [g for layer in per_layer for g in layer]


@dataclass
class MLPTape:
    """What `EnsembleMLP.backward` needs of a forward pass: each linear layer's input (a ReLU
    output, which doubles as the ReLU's mask) and each layer norm's normalised input and inverse
    std. The update computes its gradients by hand: autograd's graph bookkeeping cost 15-20% of
    an update at the paper's sizes."""

    inputs: list[torch.Tensor] = field(default_factory=list)
    norms: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def rows(self, stop: int) -> MLPTape:
        """The tape of samples [0, stop) of every member (a forward pass over more samples than
        need gradients)."""
        return MLPTape([x[:, :stop] for x in self.inputs],
                       [(n[:, :stop], s[:, :stop]) for n, s in self.norms])
