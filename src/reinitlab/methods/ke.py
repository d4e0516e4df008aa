"""Knowledge Evolution (Taha et al., CVPR 2021) and its re-sampled variant.

The mask of each tensor is a pure function of (seed, tensor name[, round]), so it needs no storage
and a resumed run draws the same one."""
import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..reset import Action, ResetEvent
from ..seeding import generator
from . import register
from .base import Method, ResetContext, in_range, random_mask


@dataclass
class KEOptions:
    split_rate: float = 0.8  # fraction kept (the "fit hypothesis")
    mode: Literal["wels", "kels"] = "wels"

    def validate(self):
        in_range("split_rate", self.split_rate, 0.0, 1.0, lo_open=True, hi_open=True)
        if self.mode not in ("wels", "kels"):
            from ..errors import UserError
            raise UserError(f"mode={self.mode!r} is not valid: expected 'wels' or 'kels'")


def kels_mask(shape, rate: float, whole_out: bool) -> torch.Tensor:
    """Keep the first ceil(rate * C) output channels and, for tensors with an input dimension, the
    first ceil(rate * C_in) input channels: the slim network a kernel-level split extracts. The
    head keeps every class output; input dims of 1-3 (images, depthwise convs) round up to whole."""
    mask = torch.zeros(shape, dtype=torch.bool)
    if len(shape) == 0:
        return torch.ones(shape, dtype=torch.bool)
    out = shape[0] if whole_out else math.ceil(rate * shape[0])
    if len(shape) == 1:
        mask[:out] = True
    else:
        mask[:out, : math.ceil(rate * shape[1])] = True
    return mask


@register
class KE(Method):
    name = "ke"
    summary = "Knowledge Evolution: a mask fixed once per tensor keeps split_rate; the rest is re-drawn"
    Options = KEOptions
    resample = False

    def mask(self, ctx: ResetContext, name: str, shape) -> torch.Tensor:
        o = self.options
        if getattr(o, "mode", "wels") == "kels":
            return kels_mask(shape, o.split_rate, whole_out=name in ctx.groups.params[ctx.groups.head])
        keys = ("ke-mask", name, ctx.round) if self.resample else ("ke-mask", name)
        return random_mask(shape, o.split_rate, generator(ctx.seed, *keys))

    def event(self, ctx: ResetContext) -> ResetEvent:
        actions = {n: Action(keep=self.mask(ctx, n, tuple(p.shape))) for n, p in ctx.params().items()}
        mode = getattr(self.options, "mode", "wels")
        return ResetEvent(actions, description=f"{mode} split {self.options.split_rate}")


@dataclass
class WELSROptions:
    split_rate: float = 0.8

    def validate(self):
        in_range("split_rate", self.split_rate, 0.0, 1.0, lo_open=True, hi_open=True)


@register
class WELSR(KE):
    name = "welsr"
    summary = "as ke (wels), but the random mask is re-sampled every round"
    Options = WELSROptions
    resample = True
