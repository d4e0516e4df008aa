"""Reset events and how they are applied to a model.

A method never edits weights itself: it returns a `ResetEvent` (per parameter tensor: keep it,
re-draw it, or keep a masked part; optionally scale the kept part, add a fraction of the re-draw
source, or add a target computed by the method), and `apply_event` carries it out against a
*source*: a complete set of values to re-draw from. Every method therefore has the same, stated
semantics for BatchNorm, biases and buffers.

Sources (a method's `redraw` option; `Reinitializer.source` builds them):
  fresh   a new draw from the model's own initializer (`fresh_state`, seeded by (seed, round))
  peer    a new draw from PyTorch's default initializer (`peer_init`), the Knowledge Evolution and
          LLF code's re-draw
  init    the run's own round-0 initial values w0
  rewind  the values after epoch `rewind_epoch` of round 0
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from ..util.seeding import derive
from .groups import Groups


@dataclass
class Action:
    """What happens to one parameter tensor p, given its source values s (the re-draw):

        p <- where(keep, scale * p + noise * s + offset, s)

    keep:   True (whole tensor kept), False (whole tensor re-drawn from the source), or a bool mask
            of p's shape, True = kept.
    scale:  a number or a tensor broadcastable to p (LW's rescale to the initial norm, DASH's
            per-kernel shrink, ReDo's zeroed outgoing columns; 0 zeroes the kept elements).
    noise:  kept elements get `noise * s` added (shrink and perturb).
    offset: a tensor of p's shape added to the kept elements (FIRE's orthogonalized target,
            with scale = 1 - alpha).
    Re-drawn elements take the source value as it is: scale, noise and offset apply to kept ones.
    """

    keep: bool | torch.Tensor = True
    scale: float | torch.Tensor = 1.0
    noise: float = 0.0
    offset: torch.Tensor | None = None

    def is_identity(self) -> bool:
        return (self.keep is True and not isinstance(self.scale, torch.Tensor) and self.scale == 1.0
                and self.noise == 0.0 and self.offset is None)

    def needs_source(self) -> bool:
        return self.keep is not True or self.noise != 0.0

    def changed(self, shape) -> int:
        """How many elements this action gives a new value: re-drawn, or kept and scaled (by other
        than 1), perturbed or offset. What an in-round event did, counted in metrics.jsonl."""
        if self.is_identity():
            return 0
        if self.keep is False:
            return math.prod(shape)
        redrawn = ~self.keep.cpu() if isinstance(self.keep, torch.Tensor) else torch.zeros(shape, dtype=torch.bool)
        if self.noise != 0.0 or self.offset is not None:
            return math.prod(shape)
        if isinstance(self.scale, torch.Tensor):
            return int((redrawn | (self.scale.cpu() != 1).expand(shape)).sum())
        return math.prod(shape) if self.scale != 1.0 else int(redrawn.sum())

    def replaced(self, shape) -> torch.Tensor | None:
        """Bool mask of the elements whose value this action replaces (re-drawn, or scaled to 0 with
        nothing added): the optimizer state of those elements is stale after an in-round event."""
        out = None
        if self.keep is False:
            return torch.ones(shape, dtype=torch.bool)
        if isinstance(self.keep, torch.Tensor):
            out = ~self.keep.cpu()
        if isinstance(self.scale, torch.Tensor) and self.noise == 0.0:
            zero = (self.scale.cpu() == 0).expand(shape)
            if self.offset is not None:  # an element scaled to 0 that gets an offset keeps a value
                zero = zero & (self.offset.cpu() == 0)
            out = zero if out is None else out | zero
        return out


@dataclass
class ResetEvent:
    actions: dict[str, Action] = field(default_factory=dict)  # parameters not listed stay unchanged
    normalize_after: str | None = None  # insert a frozen standardization after this group
    description: str = ""
    # Buffers (e.g. BatchNorm running statistics) that take the source's values although their module
    # is not re-drawn whole (shrink-perturb with buffers=fresh). Buffers of modules whose every own
    # parameter is re-drawn whole take them anyway.
    fresh_buffers: list[str] = field(default_factory=list)
    # Actions on buffers, with the parameters' semantics: CBP and SNR give the running statistics of
    # the channels they replace the source's values (a mask), Hare & Tortoise sets them to the
    # tortoise's (scale 0 plus an offset). Applied after fresh_buffers and the whole-module rule.
    buffer_actions: dict[str, Action] = field(default_factory=dict)


def default_init(m: nn.Module) -> None:
    """Fresh draw for a user's model: each module's own `reset_parameters` (PyTorch's initializer)."""
    if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
        m.reset_parameters()
    if isinstance(m, nn.modules.batchnorm._NormBase):
        m.reset_running_stats()


def peer_init(m: nn.Module) -> None:
    """PyTorch's default draw, which the Knowledge Evolution and LLF code re-draw with whatever the
    model's own initializer: conv and linear weights kaiming_uniform_(a=sqrt(5)) (uniform with bound
    1/sqrt(fan_in), about 0.41x the std of He-normal fan-in), their biases uniform in
    +-1/sqrt(fan_in); norm layers weight 1, bias 0, running statistics cleared; any other module its
    own `reset_parameters`."""
    if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
        nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
        if m.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(m.bias, -bound, bound)
    else:
        default_init(m)


def init_fn_of(model: nn.Module) -> Callable[[nn.Module], None]:
    return getattr(model, "init_module", None) or default_init


def _cuda_devices(model: nn.Module) -> list:
    return [p.device for p in model.parameters() if p.device.type == "cuda"][:1]


@torch.no_grad()
def fresh_state(model: nn.Module, seed: int, init_fn: Callable[[nn.Module], None] | None = None
                ) -> dict[str, torch.Tensor]:
    """A complete fresh draw (parameters and buffers) from the model's initializer, seeded.

    A deep copy is re-initialized under a forked RNG, so the caller's global RNG is untouched and the
    same seed always gives the same draw."""
    init_fn = init_fn or init_fn_of(model)
    with torch.random.fork_rng(devices=_cuda_devices(model)):
        torch.manual_seed(seed)
        clone = copy.deepcopy(model)
        for m in clone.modules():
            init_fn(m)
    return {k: v.detach() for k, v in clone.state_dict(keep_vars=True).items()}


@torch.no_grad()
def fresh_modules(model: nn.Module, names, seed: int, init_fn: Callable[[nn.Module], None] | None = None
                  ) -> dict[str, torch.Tensor]:
    """A fresh draw of only the modules that own the parameters `names` (their parameters and
    buffers), each from its own stream derive(seed, module name): what an in-round event needs,
    without copying the whole model at every step."""
    init_fn = init_fn or init_fn_of(model)
    owners = {n.rpartition(".")[0] for n in names}
    out: dict[str, torch.Tensor] = {}
    for mname, module in model.named_modules():
        if mname not in owners:
            continue
        with torch.random.fork_rng(devices=_cuda_devices(model)):
            torch.manual_seed(derive(seed, mname))
            clone = copy.deepcopy(module)
            init_fn(clone)
        prefix = f"{mname}." if mname else ""
        for k, v in list(clone.named_parameters(recurse=False)) + list(clone.named_buffers(recurse=False)):
            out[prefix + k] = v.detach()
    return out


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of every parameter and buffer: a source for redraw=init and redraw=rewind."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def apply_event(model: nn.Module, groups: Groups, event: ResetEvent, fresh: dict[str, torch.Tensor]
                ) -> dict[str, float]:
    """Carry out `event`. Returns, per group, the fraction of its elements that were re-drawn.

    A module whose every own parameter is re-drawn whole also gets fresh buffers (BatchNorm running
    statistics cleared); buffers of kept or partly kept modules stay.
    """
    params = dict(model.named_parameters())
    named_buffers = dict(model.named_buffers())
    unknown = set(event.actions) - set(params)
    if unknown:
        raise KeyError(f"reset event names unknown parameters: {sorted(unknown)[:5]}")
    unknown = set(event.buffer_actions) - set(named_buffers)
    if unknown:
        raise KeyError(f"reset event names unknown buffers: {sorted(unknown)[:5]}")
    for name, act in event.actions.items():
        _apply_action(params[name], act, fresh[name] if act.needs_source() else None)
    for key in event.fresh_buffers:
        if key in fresh and key in named_buffers:
            named_buffers[key].copy_(fresh[key])
    for mname, module in model.named_modules():
        own = [f"{mname}.{n}" if mname else n for n, _ in module.named_parameters(recurse=False)]
        if own and all(event.actions.get(n, Action()).keep is False for n in own):
            for bname, buf in module.named_buffers(recurse=False):
                key = f"{mname}.{bname}" if mname else bname
                if key in fresh:
                    buf.copy_(fresh[key])
    for name, act in event.buffer_actions.items():
        _apply_action(named_buffers[name], act, fresh[name] if act.needs_source() else None)
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


def _apply_action(p: torch.Tensor, act: Action, f: torch.Tensor | None) -> None:
    """p <- where(keep, scale * p + noise * f + offset, f), in place."""
    if act.is_identity():
        return
    f = f.to(p.device) if f is not None else None
    if act.keep is False:
        p.copy_(f)
        return
    scaled = isinstance(act.scale, torch.Tensor) or act.scale != 1.0
    kept = p * (act.scale.to(p.device) if isinstance(act.scale, torch.Tensor) else act.scale) if scaled else p.clone()
    if act.noise:
        kept.add_(f, alpha=act.noise)
    if act.offset is not None:
        kept.add_(act.offset.to(p.device, p.dtype))
    if act.keep is True:
        p.copy_(kept)
    else:
        p.copy_(torch.where(act.keep.to(p.device), kept, f))


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
