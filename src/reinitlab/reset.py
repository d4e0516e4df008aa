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


# LW's frozen standardization lives as two buffers on the module whose output it standardizes, applied
# by a forward hook. Buffers (not a child module) because a child of an nn.Sequential group would also
# be run as one of its layers; buffers travel with state_dict(), .to(device) and deep copies, and the
# optimizer never sees them.
STD_MEAN, STD_STD = "reinit_std_mean", "reinit_std_std"


def _standardize_hook(module, inputs, output):
    shape = (1, -1) + (1,) * (output.dim() - 2)
    return (output - getattr(module, STD_MEAN).view(shape)) / getattr(module, STD_STD).view(shape)


def insert_standardize(model: nn.Module, module_name: str, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Standardize the output of `module_name` per channel with fixed statistics, from now on."""
    target = model.get_submodule(module_name)
    if hasattr(target, STD_MEAN):
        raise ValueError(f"{module_name} already has a frozen standardization")
    ref = next(iter(target.parameters()), mean)
    target.register_buffer(STD_MEAN, mean.detach().to(ref.device, torch.float32).clone())
    target.register_buffer(STD_STD, std.detach().to(ref.device, torch.float32).clone())
    target.register_forward_hook(_standardize_hook)


def standardization_of(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean, std) of the frozen standardization on this module's output, or None."""
    if not hasattr(module, STD_MEAN):
        return None
    return getattr(module, STD_MEAN), getattr(module, STD_STD)


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
