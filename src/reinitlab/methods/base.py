"""Helpers shared by the methods: their layers, gradients on training batches, masks."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..core.method import ResetContext
from ..core.reset import Action, preserve_buffers
from ..util.errors import UserError


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every conv and linear layer, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


def training_gradients(ctx: ResetContext) -> dict[str, torch.Tensor]:
    """The summed gradient of the loss over ctx.batches(), per parameter; BatchNorm in train mode with
    its running statistics untouched, the model's own .grad as the caller left it (a reset between
    backward and step must not change the step)."""
    params = ctx.params()
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    with preserve_buffers(ctx.model), torch.enable_grad():
        saved = {n: p.grad for n, p in params.items()}
        for x, y in ctx.batches():
            ctx.model.zero_grad(set_to_none=True)
            ctx.loss_fn(ctx.model(x), y).backward()
            for n, p in params.items():
                if p.grad is not None:
                    grads[n] += p.grad
        for n, p in params.items():
            p.grad = saved[n]
    return grads


@dataclass
class KeepOptions:
    """The kept fraction of each tensor for score-masked methods (dsd, dnr). 0.8 matches ke's default
    split_rate, so the masked methods compare at the same kept fraction."""

    keep: float = 0.8

    def validate(self):
        in_range("keep", self.keep, 0.0, 1.0, lo_open=True, hi_open=True)


def in_range(name: str, value: float, lo: float, hi: float, lo_open=False, hi_open=False) -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise UserError(f"{name}={value!r} is out of range: expected a number in {lb}{lo}, {hi}{rb}")


def span(names: list[str], a: int, b: int) -> str:
    """Groups a..b as a description names them: "block2..head", or "head" alone."""
    return names[a] if a == b else f"{names[a]}..{names[b]}"


def reset_groups_from(groups: Groups, k: int) -> dict[str, Action]:
    """Re-draw every parameter of groups k..K whole."""
    return {p: Action(keep=False) for p in groups.params_from(k)}


def top_fraction_mask(score: torch.Tensor, keep: float) -> torch.Tensor:
    """Bool mask of exactly round(keep * n) largest scores; among equal scores the earlier position
    is kept. A stable sort, not topk: topk's order among ties is unspecified (it differs between
    devices and versions), and ties are common (fresh BatchNorm weights are all 1, DNR scores 0)."""
    n = score.numel()
    k = int(round(keep * n))
    mask = torch.zeros(n, dtype=torch.bool, device=score.device)
    if k > 0:
        order = torch.sort(score.detach().flatten().float(), descending=True, stable=True).indices
        mask[order[:k]] = True
    return mask.view_as(score)


def random_mask(shape, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Bool mask with exactly round(keep * n) True entries at uniformly random positions."""
    n = math.prod(shape)
    k = int(round(keep * n))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[:k]] = True
    return mask.view(shape)
