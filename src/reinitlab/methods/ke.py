"""Knowledge Evolution (Taha et al., CVPR 2021) and its re-sampled variant.

The mask of each tensor is a pure function of (seed, tensor name[, round]), so it needs no storage
and a resumed run draws the same one.

Default (`peer=false`): every parameter tensor is split, BatchNorm and biases included, and a wels
mask keeps exactly round(split_rate * n) elements. `peer=true` follows the KE code instead: only
conv and linear weights are split (a conv bias follows its weight's mask at input 0, kernel position
0; linear biases and BatchNorm are never touched), a wels mask keeps each element independently with
probability split_rate, and re-drawn values come from PyTorch's default draw (redraw=peer).
`mode=kels` keeps a kernel-level slice instead of a random one: the first split_rate of the output
channels and of the input channels of each tensor (the head keeps every class). In both, kels keeps
every input channel of the model's first layer (KE's rule for the RGB stem).
"""
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from ..util.seeding import generator
from .base import in_range, random_mask, weighted_layers


@dataclass
class KEOptions:
    split_rate: float = 0.8  # fraction kept (the "fit hypothesis")
    mode: Literal["wels", "kels"] = "wels"
    peer: bool = False  # the KE code's rules (module docstring); implies redraw=peer

    def validate(self):
        in_range("split_rate", self.split_rate, 0.0, 1.0, lo_open=True, hi_open=True)  # mode: its Literal


def kels_mask(shape, rate: float, whole_out: bool, whole_in: bool) -> torch.Tensor:
    """Keep the first ceil(rate * C_out) output channels and, for tensors with an input dimension,
    the first ceil(rate * C_in) input channels: the slim network a kernel-level split extracts.
    `whole_out`: every output is kept (the head keeps every class); `whole_in`: every input channel
    is kept (the model's first layer keeps all image channels, as in KE). Depthwise kernels (one
    input channel) keep it, since ceil(rate * 1) = 1."""
    mask = torch.zeros(shape, dtype=torch.bool)
    if len(shape) == 0:
        return torch.ones(shape, dtype=torch.bool)
    out = shape[0] if whole_out else math.ceil(rate * shape[0])
    if len(shape) == 1:
        mask[:out] = True
    else:
        mask[:out, : shape[1] if whole_in else math.ceil(rate * shape[1])] = True
    return mask


def first_layer_weight(model: nn.Module) -> str | None:
    """The weight of the layer that sees the input image: the first conv or linear in model order."""
    layers = weighted_layers(model)
    return f"{layers[0][0]}.weight" if layers else None


@register
class KE(Method):
    name = "ke"
    summary = "Knowledge Evolution: a mask fixed once per tensor keeps split_rate; the rest is re-drawn"
    Options = KEOptions
    fidelity = (
        Fidelity("re-draws from the model's initializer (registry models: He-normal convolutions)",
                 "`kaiming_uniform_(a=sqrt(5))`",
                 "`peer=true` (or `redraw=peer`)"),
        Fidelity("every tensor is split, BatchNorm and biases included",
                 "conv and linear weights only; a conv bias follows its weight's mask; linear biases and "
                 "BatchNorm untouched",
                 "`peer=true`"),
        Fidelity("wels keeps exactly round(split_rate·n) elements",
                 "each element with probability split_rate",
                 "`peer=true`"),
        Fidelity("kels: the first conv/linear layer in model order keeps every input channel",
                 "every conv with 3 input channels does",
                 "same on the registry models"),
        Fidelity("masks come from reinitlab's seeded streams",
                 "numpy's global generator",
                 "not offered (same rule, other numbers)"),
    )
    resample = False

    def _mode(self) -> str:
        return getattr(self.options, "mode", "wels")

    def mask(self, ctx: ResetContext, name: str, shape, first: str | None = None) -> torch.Tensor:
        """`first`: the name of the first layer's weight (first_layer_weight), for kels."""
        o = self.options
        if self._mode() == "kels":
            return kels_mask(shape, o.split_rate, whole_out=name in ctx.groups.params[ctx.groups.head],
                             whole_in=name == first)
        keys = ("ke-mask", name, ctx.round) if self.resample else ("ke-mask", name)
        g = generator(ctx.seed, *keys)
        if getattr(o, "peer", False):  # the KE code: each element kept with probability split_rate
            return torch.rand(shape, generator=g) >= 1.0 - o.split_rate
        return random_mask(shape, o.split_rate, g)

    def event(self, ctx: ResetContext) -> ResetEvent:
        what = f"{self._mode()} split {self.options.split_rate}"
        if getattr(self.options, "peer", False):
            return ResetEvent(self._peer_actions(ctx), description=what + " (KE code's rules)")
        first = first_layer_weight(ctx.model)
        actions = {n: Action(keep=self.mask(ctx, n, tuple(p.shape), first)) for n, p in ctx.params().items()}
        return ResetEvent(actions, description=what)

    def _peer_actions(self, ctx: ResetContext) -> dict[str, Action]:
        actions, first = {}, first_layer_weight(ctx.model)
        for mname, m in weighted_layers(ctx.model):
            w = f"{mname}.weight"
            mask = self.mask(ctx, w, tuple(m.weight.shape), first)
            actions[w] = Action(keep=mask)
            if m.bias is not None and isinstance(m, nn.modules.conv._ConvNd):
                actions[f"{mname}.bias"] = Action(keep=mask.reshape(mask.shape[0], -1)[:, 0].clone())
        return actions


@dataclass
class WELSROptions:
    split_rate: float = 0.8

    def validate(self):
        in_range("split_rate", self.split_rate, 0.0, 1.0, lo_open=True, hi_open=True)


@register
class WELSR(KE):
    """The source paper's variant of Knowledge Evolution: as `ke` with mode wels, each tensor keeps a
    random split_rate of its elements and re-draws the rest, but the mask is drawn anew every round
    (from the stream (seed, tensor, round))."""
    name = "welsr"
    summary = "as ke (wels), but the random mask is re-sampled every round"
    Options = WELSROptions
    fidelity = (
        Fidelity("the mask is re-sampled every round",
                 "no public code (the source paper's variant)",
                 "—"),
    )
    resample = True
