"""What plasticity work measures at the end of a stage (Dohare et al. 2024; Kumar et al. 2024; Lyle et
al.): the share of dormant units, the effective rank of the penultimate features, the weight norm and
the gradient norm, all on a few fixed training batches of the stage, with BatchNorm's running
statistics untouched and the model's gradients left as they were.

- dormant: the share of units (conv channels, linear rows; the logits excepted) whose ReDo score
  (mean activation through a ReLU after the layer's norm, over the layer's mean) is <= 0.1, the
  score reinitlab's `redo` method resets by;
- srank: Kumar et al. (2021)'s effective rank of the features entering the last linear layer: the
  fewest singular values whose sum reaches (1 - 0.01) of the total;
- weight_norm: the L2 norm of all parameters;
- grad_norm: the L2 norm of the loss gradient over all parameters, averaged over the batches.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn as nn

from ..core.reset import preserve_buffers
from ..methods.redo import dormant_units

DORMANT_TAU = 0.1
SRANK_DELTA = 0.01


def srank(features: torch.Tensor, delta: float = SRANK_DELTA) -> int:
    """Effective rank: the fewest singular values of `features` (examples x dimensions) whose sum
    reaches (1 - delta) of their total."""
    s = torch.linalg.svdvals(features.double())
    if s.sum() <= 0:
        return 0
    cum = torch.cumsum(s, 0) / s.sum()
    return int((cum < 1 - delta).sum()) + 1


def penultimate_features(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The inputs of the model's last linear layer (flattened), over `batches`."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].detach().flatten(1).float()))
    try:
        with torch.no_grad(), preserve_buffers(model):
            for x, _ in batches:
                model(x)
    finally:
        handle.remove()
    return torch.cat(seen)


def grad_norm(model: nn.Module, batches, loss_fn: Callable) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    norms = []
    try:
        with preserve_buffers(model), torch.enable_grad():
            for x, y in batches:
                for p in params:
                    p.grad = None
                loss_fn(model(x).float(), y).backward()
                norms.append(float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params if p.grad is not None))))
    finally:
        for p, g in zip(params, saved, strict=True):
            p.grad = g
    return sum(norms) / len(norms)


def plasticity(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], loss_fn: Callable) -> dict:
    """{dormant, srank, weight_norm, grad_norm} on `batches` (un-augmented training batches of the
    stage). Leaves the model's mode, weights, buffers and gradients as they were."""
    was_training = model.training
    model.train()  # as the stage trained: batch statistics in BatchNorm
    try:
        masks = dormant_units(SimpleNamespace(model=model, batches=lambda: batches), DORMANT_TAU)
        units = sum(int(m.numel()) for m in masks.values())
        out = {"dormant": sum(int(m.sum()) for m in masks.values()) / max(units, 1),
               "srank": srank(penultimate_features(model, batches)),
               "weight_norm": float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters()))),
               "grad_norm": grad_norm(model, batches, loss_fn)}
    finally:
        model.train(was_training)
    return out
