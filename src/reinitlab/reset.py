"""Reset events and how they are applied to a model.

A method never edits weights itself: it returns a `ResetEvent` (per parameter tensor: keep it,
re-draw it, or keep a masked part; optionally scale the kept part or add a fraction of a fresh
draw), and `apply_event` carries it out against a fresh draw from the model's own initializer.
Every method therefore has the same, stated semantics for BatchNorm, biases and buffers.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from .groups import Groups


@dataclass
class Action:
    """What happens to one parameter tensor.

    keep:  True (whole tensor kept), False (whole tensor re-drawn), or a bool mask, True = kept.
    scale: kept elements are multiplied by this (LW's rescale to the initial norm; 0 zeroes them).
    noise: kept elements get `noise * fresh` added (shrink and perturb).
    """

    keep: bool | torch.Tensor = True
    scale: float = 1.0
    noise: float = 0.0

    def is_identity(self) -> bool:
        return self.keep is True and self.scale == 1.0 and self.noise == 0.0


@dataclass
class ResetEvent:
    actions: dict[str, Action] = field(default_factory=dict)  # parameters not listed stay unchanged
    normalize_after: str | None = None  # insert a frozen standardization after this group
    description: str = ""


def default_init(m: nn.Module) -> None:
    """Fresh draw for a user's model: each module's own `reset_parameters` (PyTorch's initializer)."""
    if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
        m.reset_parameters()
    if isinstance(m, nn.modules.batchnorm._NormBase):
        m.reset_running_stats()


def init_fn_of(model: nn.Module) -> Callable[[nn.Module], None]:
    return getattr(model, "init_module", None) or default_init


@torch.no_grad()
def fresh_state(model: nn.Module, seed: int, init_fn: Callable[[nn.Module], None] | None = None
                ) -> dict[str, torch.Tensor]:
    """A complete fresh draw (parameters and buffers) from the model's initializer, seeded.

    A deep copy is re-initialized under a forked RNG, so the caller's global RNG is untouched and the
    same seed always gives the same draw."""
    init_fn = init_fn or init_fn_of(model)
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"][:1]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        clone = copy.deepcopy(model)
        for m in clone.modules():
            init_fn(m)
    return {k: v.detach() for k, v in clone.state_dict(keep_vars=True).items()}


@torch.no_grad()
def apply_event(model: nn.Module, groups: Groups, event: ResetEvent, fresh: dict[str, torch.Tensor]
                ) -> dict[str, float]:
    """Carry out `event`. Returns, per group, the fraction of its elements that were re-drawn.

    A module whose every own parameter is re-drawn whole also gets fresh buffers (BatchNorm running
    statistics cleared); buffers of kept or partly kept modules stay.
    """
    params = dict(model.named_parameters())
    unknown = set(event.actions) - set(params)
    if unknown:
        raise KeyError(f"reset event names unknown parameters: {sorted(unknown)[:5]}")
    for name, act in event.actions.items():
        if act.is_identity():
            continue
        p, f = params[name], fresh[name].to(params[name].device)
        kept = p * act.scale if act.scale != 1.0 else p.clone()
        if act.noise:
            kept.add_(f, alpha=act.noise)
        if act.keep is True:
            p.copy_(kept)
        elif act.keep is False:
            p.copy_(f)
        else:
            p.copy_(torch.where(act.keep.to(p.device), kept, f))
    for mname, module in model.named_modules():
        own = [f"{mname}.{n}" if mname else n for n, _ in module.named_parameters(recurse=False)]
        if own and all(event.actions.get(n, Action()).keep is False for n in own):
            for bname, buf in module.named_buffers(recurse=False):
                key = f"{mname}.{bname}" if mname else bname
                if key in fresh:
                    buf.copy_(fresh[key])
    summary = {}
    for g in groups.names:
        total = redrawn = 0
        for n in groups.params[g]:
            act = event.actions.get(n, Action())
            numel = params[n].numel()
            total += numel
            if act.keep is False:
                redrawn += numel
            elif isinstance(act.keep, torch.Tensor):
                redrawn += int((~act.keep).sum())
        summary[g] = redrawn / max(total, 1)
    return summary


class FrozenStandardize(nn.Module):
    """Per-channel (x - mean) / std with statistics estimated once and then frozen (buffers, not
    parameters: the optimizer never sees them, and no mode switch changes them)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.eps = eps

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


STANDARDIZE_ATTR = "reinit_standardize"


def _standardize_hook(module, inputs, output):
    return getattr(module, STANDARDIZE_ATTR)(output)


def insert_standardize(model: nn.Module, module_name: str, channels: int, eps: float = 1e-5
                       ) -> FrozenStandardize:
    """Attach a FrozenStandardize to the output of `module_name`. It is registered as a child of that
    module, so `.to(device)`, `state_dict()` and deep copies carry it."""
    target = model.get_submodule(module_name)
    if hasattr(target, STANDARDIZE_ATTR):
        return getattr(target, STANDARDIZE_ATTR)
    ref = next(iter(target.parameters()), None)
    std = FrozenStandardize(channels, eps)
    if ref is not None:
        std = std.to(ref.device)
    target.add_module(STANDARDIZE_ATTR, std)
    target.register_forward_hook(_standardize_hook)
    return std


class preserve_buffers:
    """Run forward passes in train mode (batch statistics, as training will see them) without
    letting them move BatchNorm running statistics."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.saved = {k: b.clone() for k, b in self.model.named_buffers()}
        self.was_training = self.model.training
        self.model.train()
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for k, b in self.model.named_buffers():
                if k in self.saved:
                    b.copy_(self.saved[k])
        self.model.train(self.was_training)
        return False
