"""Units, for the methods that replace single units during training (cbp, snr).

A unit is one output channel of a conv layer (one output row of a linear layer) whose output reaches
the next conv or linear layer only through modules that act on each channel alone: norm layers,
activations, pooling, dropout and a flatten. Such runs are read from nn.Sequential containers (nested
ones opened), the only modules whose order of execution is known without tracing the model: a module
with a forward() of its own (a residual block) ends a run, and its children are searched for runs of
their own. So a residual block's inner conv is a unit layer while the conv whose output joins the
residual sum is not (the sum also carries it past the next layer), and the logits are never units.
A model without any unit layer is refused, in one line, when the method is attached.

The unit's *activation* is what the next layer receives: after the norm, the activation function and
any pooling, as the Continual Backprop code records its features. After a flatten the next (linear)
layer sees `spread` columns per unit (its spatial positions, channel-major).

Replacing units is one ResetEvent for all units replaced at a step:
  incoming   the unit's weight row (a conv: its filter) from the re-draw source, its bias 0, its
             element of every norm layer between the two layers from the source (weight, bias and,
             for BatchNorm, the running statistics);
  outgoing   the next layer's input columns of the unit set to 0, so the network computes what it
             computed before, except for the unit's mean contribution: with `means`, the next layer's
             bias gains it (per output, the unit's mean activation times the sum of its outgoing
             weights; exact for a linear next layer, ignoring the zero padding of a conv).
A weight that is both a replaced unit's outgoing weight and another replaced unit's incoming weight is
re-drawn (both peers' codes zero the outgoing columns of layer l before they re-draw the rows of l+1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..core.method import Method
from ..core.reset import Action, ResetEvent
from ..util.errors import UserError

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
                nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity)
_PER_CHANNEL = _ACTIVATIONS + (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                               nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
                               nn.modules.dropout._DropoutNd)
_BATCHNORM = nn.modules.batchnorm._NormBase  # BatchNorm*, InstanceNorm*, SyncBatchNorm
_OPAQUE = None  # a module with its own forward() inside a run


def _is_layer(m) -> bool:
    return isinstance(m, nn.Linear) or (isinstance(m, nn.modules.conv._ConvNd) and not m.transposed)


def _width(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


@dataclass
class UnitLayer:
    name: str  # the conv or linear layer whose outputs are the units
    layer: nn.Module
    norms: list[str]  # norm layers between it and the next layer (their elements follow the unit)
    next_name: str  # the next conv or linear layer: the units' outgoing weights
    next_layer: nn.Module
    spread: int  # the next layer's input columns per unit (after a flatten: the spatial positions)

    @property
    def width(self) -> int:
        return _width(self.layer)

    @property
    def conv(self) -> bool:
        return not isinstance(self.layer, nn.Linear)

    def unit_view(self, x: torch.Tensor) -> torch.Tensor:
        """The next layer's input with the units on dim 1: (N, C, positions...) for a conv next layer,
        (samples, C, spread) for a linear one (a view where x's layout allows)."""
        if isinstance(self.next_layer, nn.Linear):
            return x.reshape(-1, self.width, self.spread)
        return x

    def outgoing_magnitude(self) -> torch.Tensor:
        """Mean |w| of each unit's outgoing weights: (C,) for a conv next layer, (C, spread) for a
        linear one, per input column (as the CBP code does before averaging over a unit's columns)."""
        w = self.next_layer.weight.detach().abs().float()
        if isinstance(self.next_layer, nn.Linear):
            return w.mean(0).view(self.width, self.spread)
        return w.mean([d for d in range(w.dim()) if d != 1])

    def incoming_magnitude(self) -> torch.Tensor:
        """Mean |w| of each unit's incoming weights, (C,)."""
        w = self.layer.weight.detach().abs().float()
        return w.reshape(w.shape[0], -1).mean(1)

    def outgoing_sums(self) -> torch.Tensor:
        """(out, C): per output of the next layer, the sum of a unit's outgoing weights (over its kernel
        positions or its columns): what a constant activation of 1 on the unit adds to that output."""
        w = self.next_layer.weight.detach().float()
        if isinstance(self.next_layer, nn.Linear):
            return w.view(w.shape[0], self.width, self.spread).sum(2)
        return w.reshape(w.shape[0], w.shape[1], -1).sum(2)


def _runs(model: nn.Module) -> list[list[tuple[str, nn.Module | None]]]:
    """Sequences of leaf modules executed one after another (see the module docstring)."""
    runs: list[list] = []

    def visit(name: str, mod: nn.Module, run: list) -> None:
        kids = [(k, c) for k, c in mod._modules.items() if c is not None]  # repeats included, as forward() runs them
        if isinstance(mod, nn.Sequential):
            for k, c in kids:
                visit(f"{name}.{k}" if name else k, c, run)
        elif not kids:
            run.append((name, mod))
        else:
            run.append((name, _OPAQUE))
            for k, c in kids:
                runs.append([])
                visit(f"{name}.{k}" if name else k, c, runs[-1])

    runs.append([])
    visit("", model, runs[0])
    return runs


def _per_channel_norm(m: nn.Module, width: int, conv: bool) -> bool:
    if isinstance(m, _BATCHNORM):
        return m.num_features == width
    if isinstance(m, nn.GroupNorm):
        return conv and m.num_channels == width
    if isinstance(m, nn.LayerNorm):
        return not conv and tuple(m.normalized_shape) == (width,)
    return False


def _spread(a: nn.Module, b: nn.Module, flat: bool) -> int | None:
    """Columns per unit of `a` in `b`'s input, or None when `b` does not take `a`'s units that way."""
    width = _width(a)
    if isinstance(b, nn.Linear):
        if flat:
            return b.in_features // width if b.in_features % width == 0 else None
        return 1 if isinstance(a, nn.Linear) and b.in_features == width else None
    if isinstance(a, nn.Linear) or flat or a.weight.dim() != b.weight.dim() or b.groups != 1 or b.in_channels != width:
        return None  # a grouped next conv mixes no units: a unit's outgoing weights would be a whole filter
    return 1


def unit_layers(model: nn.Module) -> list[UnitLayer]:
    """Every unit layer of `model`, in model order."""
    runs = _runs(model)
    seen: dict[int, int] = {}
    for run in runs:
        for _, m in run:
            if m is not None and _is_layer(m):
                seen[id(m)] = seen.get(id(m), 0) + 1
    out = []
    for run in runs:
        for i, (name, a) in enumerate(run):
            if a is None or not _is_layer(a) or seen[id(a)] > 1:  # a shared layer has no single next layer
                continue
            conv, norms, flat = not isinstance(a, nn.Linear), [], False
            for bname, b in run[i + 1:]:
                if b is None:
                    break
                if _is_layer(b):
                    spread = _spread(a, b, flat) if seen[id(b)] == 1 else None
                    if spread:
                        out.append(UnitLayer(name, a, norms, bname, b, spread))
                    break
                if isinstance(b, nn.Flatten) and conv and not flat and b.start_dim == 1 and b.end_dim == -1:
                    flat = True
                elif not flat and _per_channel_norm(b, _width(a), conv):
                    norms.append(bname)
                elif not isinstance(b, _PER_CHANNEL):
                    break
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    return sorted(out, key=lambda u: order[u.name])


def require_units(model: nn.Module, method: str) -> list[UnitLayer]:
    units = unit_layers(model)
    if not units:
        raise UserError(f"method {method!r} needs unit layers and this model has none: a conv or linear layer "
                        "whose output reaches the next conv or linear layer inside one nn.Sequential, through "
                        "norm, activation, pooling, dropout or flatten modules only (a module with its own "
                        "forward() is opaque)")
    return units


class UnitTap:
    """Keeps, per unit layer, the input its next layer received in the latest training forward pass
    (train mode, gradients on): a reference to a tensor autograd keeps anyway, no copy. Evaluation and
    the no-grad statistics passes of round starts are not recorded."""

    def __init__(self, units: list[UnitLayer]):
        self.inputs: dict[str, torch.Tensor] = {}
        self.handles = [u.next_layer.register_forward_pre_hook(self._hook(u.name)) for u in units]

    def _hook(self, name: str):
        def hook(module, args):
            if module.training and torch.is_grad_enabled() and args:
                self.inputs[name] = args[0].detach()
        return hook

    def take(self) -> dict[str, torch.Tensor]:
        """The inputs recorded since the last call, then forgets them."""
        out, self.inputs = self.inputs, {}
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles, self.inputs = [], {}


def replacement_event(model: nn.Module, units: list[UnitLayer], replaced: dict[str, torch.Tensor],
                      means: dict[str, torch.Tensor] | None, description: str) -> ResetEvent:
    """The ResetEvent replacing the units `replaced` marks (layer name -> bool per unit); `means`
    (layer name -> each unit's mean activation) also compensates the next layer's bias."""
    actions: dict[str, Action] = {}
    buffers: dict[str, Action] = {}

    def act(name: str) -> Action:
        return actions.setdefault(name, Action())

    for u in units:
        mask = replaced.get(u.name)
        if mask is None or not bool(mask.any()):
            continue
        mask = mask.detach().to("cpu", torch.bool)
        keep = ~mask
        w = u.layer.weight
        act(f"{u.name}.weight").keep = keep.view(-1, *([1] * (w.dim() - 1))).expand(w.shape).clone()
        if u.layer.bias is not None:  # only this unit layer scales its own bias (its predecessor sets an offset)
            act(f"{u.name}.bias").scale = keep.float()
        for norm in u.norms:
            nm = model.get_submodule(norm)
            for pname, _ in nm.named_parameters(recurse=False):
                act(f"{norm}.{pname}").keep = keep.clone()
            for bname, buf in nm.named_buffers(recurse=False):
                if buf.is_floating_point() and tuple(buf.shape) == (u.width,):  # running mean and variance
                    buffers[f"{norm}.{bname}"] = Action(keep=keep.clone())
        nw = u.next_layer.weight
        cols = keep.repeat_interleave(u.spread) if isinstance(u.next_layer, nn.Linear) else keep
        column_scale = cols.to(nw.dtype).view(1, -1, *([1] * (nw.dim() - 2)))
        act(f"{u.next_name}.weight").scale = column_scale  # a layer is the next layer of one unit layer at most
        if means is not None and u.next_layer.bias is not None and u.name in means:
            m = torch.where(mask, means[u.name].detach().float().cpu(), torch.zeros(()))
            shift = (u.outgoing_sums().cpu() * m).sum(1).to(u.next_layer.bias.dtype)
            act(f"{u.next_name}.bias").offset = shift
    for a in actions.values():
        if a.offset is not None and isinstance(a.scale, torch.Tensor):
            a.offset = a.offset * (a.scale != 0)  # a replaced unit's own bias is 0, compensated or not
    return ResetEvent(actions, description=description, buffer_actions=buffers)


class UnitMethod(Method):
    """A method that acts on hidden units (cbp, snr): it finds the model's unit layers when attached,
    refusing a model without any, and taps what each unit layer's next layer receives."""

    def __init__(self, **options):
        super().__init__(**options)
        self.units: list[UnitLayer] = []
        self.tap: UnitTap | None = None

    def attach(self, model: nn.Module, groups: Groups) -> None:
        if self.tap is not None:  # attached again (a new model): the old hooks go
            self.tap.close()
        self.units = require_units(model, self.name)
        self.tap = UnitTap(self.units)
