"""Frobenius norms of a model's parameters: per tensor and per group (every parameter the group owns,
BatchNorm affine parameters and biases included)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..core.groups import Groups


def tensor_norms(model: nn.Module) -> dict[str, float]:
    return {n: float(p.detach().double().norm()) for n, p in model.named_parameters()}


def group_norms(model: nn.Module, groups: Groups, per_tensor: dict[str, float] | None = None,
                on_device: bool = False) -> dict[str, float]:
    """{group: Frobenius norm of its parameters}.

    From float64 norms per tensor (`per_tensor`, or computed here: the analyses and the round
    diagnostics), or with `on_device` summed in float32 on the parameters' device and read back
    once: what training logs after every epoch, where a read per tensor would stall a GPU."""
    if not on_device:
        t = per_tensor or tensor_norms(model)
        return {g: sum(t[p] ** 2 for p in groups.params[g]) ** 0.5 for g in groups.names}
    params = dict(model.named_parameters())
    with torch.no_grad():
        sq = [torch.stack([params[p].detach().float().pow(2).sum() for p in groups.params[g]]).sum()
              for g in groups.names]
        vals = torch.stack(sq).sqrt().tolist()
    return dict(zip(groups.names, vals, strict=True))
