"""ReDo (Sokar et al., ICML 2023): recycle dormant units.

Units are the output channels of every conv and linear layer except the last (the logits). A unit's
activation is the layer's output after the norm layer that directly follows it (if any), through a
ReLU; its score is the mean activation over the training batches (and positions), divided by the
layer's mean score. Units scoring <= tau are dormant: their incoming weights (weight rows, bias, and
the following norm's weight and bias) are re-drawn, and their outgoing weights (the matching input
columns of the next conv or linear layer in model order, when it is not grouped and its input width
equals this layer's output width, or, for a linear layer after a conv, a multiple of it: a flatten's
positions, channel-major) are set to 0; a weight that is both ends 0. `every=N` also
recycles inside each round, every N optimizer steps."""
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.method import Cadence, Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent, preserve_buffers
from .base import in_range

_NORM = nn.modules.batchnorm._NormBase


@dataclass
class ReDoOptions:
    tau: float = 0.1  # dormancy threshold on the normalized score
    every: int = 0  # >0: also every N optimizer steps within a round

    def validate(self):
        in_range("tau", self.tau, 0.0, 1.0)
        in_range("every", self.every, 0, 10**9)


def redo_layers(model: nn.Module) -> list[tuple[str, nn.Module, str | None]]:
    """(layer name, layer, name of the norm layer that directly follows it or None), model order."""
    mods = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    out = []
    for i, (name, m) in enumerate(mods):
        if not isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            continue
        width = m.weight.shape[0]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        norm = nxt[0] if nxt and isinstance(nxt[1], _NORM) and nxt[1].num_features == width else None
        out.append((name, m, norm))
    return out


@torch.no_grad()
def dormant_units(ctx: ResetContext, tau: float) -> dict[str, torch.Tensor]:
    """layer name -> bool mask of its dormant output units (every layer but the last)."""
    layers = redo_layers(ctx.model)[:-1]
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook_for(name):
        def hook(_m, _inp, out):
            a = torch.relu(out.detach().float())
            a = a.transpose(0, 1).reshape(a.shape[1], -1)
            sums[name] = sums.get(name, 0) + a.sum(1)
            counts[name] = counts.get(name, 0) + a.shape[1]
        return hook

    handles = [ctx.model.get_submodule(norm or name).register_forward_hook(hook_for(name))
               for name, _, norm in layers]
    try:
        with preserve_buffers(ctx.model):
            for x, _ in ctx.batches():
                ctx.model(x)
    finally:
        for h in handles:
            h.remove()
    masks = {}
    for name, _, _ in layers:
        if name not in sums:
            continue  # a layer the forward pass never reached
        score = sums[name] / counts[name]
        masks[name] = score / (score.mean() + 1e-9) <= tau
    return masks


@register
class ReDo(Method):
    name = "redo"
    summary = "ReDo: units with normalized mean activation <= tau get fresh incoming and zero outgoing weights"
    Options = ReDoOptions
    fidelity = (
        Fidelity("the activation is taken after the layer's norm layer (when one follows), through a ReLU",
                 "the ReLU of the conv/linear output itself",
                 "not offered"),
        Fidelity("incoming weights include the following norm's weight and bias; shortcut convs are layers too",
                 "conv/linear weight and bias only; layers named `shortcut` skipped",
                 "not offered"),
        Fidelity("dormancy is measured on 4 fixed training batches at the event",
                 "the last 512 training samples seen",
                 "not offered"),
        Fidelity("re-draws from the model's initializer",
                 "the layer's own `reset_parameters()` (PyTorch's default)",
                 "`redraw=peer`"),
        Fidelity("`every=N`: also every N optimizer steps inside a round",
                 "the harness: after every `period`-th epoch",
                 "`every=` the steps of `period` epochs (the same moments, measured on our 4 batches)"),
        Fidelity("in-round events clear the optimizer state (momentum) of the replaced elements",
                 "clears Adam's moments and step",
                 "same rule"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        dormant = dormant_units(ctx, self.options.tau)
        layers = redo_layers(ctx.model)
        actions: dict[str, Action] = {}
        total = 0
        for i, (name, m, norm) in enumerate(layers[:-1]):
            d = dormant.get(name)
            if d is None or not bool(d.any()):
                continue
            total += int(d.sum())
            keep = ~d.to("cpu")
            w_keep = keep.view(-1, *([1] * (m.weight.dim() - 1))).expand(m.weight.shape).clone()
            _merge(actions, f"{name}.weight", keep=w_keep)
            if m.bias is not None:
                _merge(actions, f"{name}.bias", keep=keep.clone())
            if norm is not None:
                nm = ctx.model.get_submodule(norm)
                for pname, _ in nm.named_parameters(recurse=False):
                    _merge(actions, f"{norm}.{pname}", keep=keep.clone())
            nxt_name, nxt, _ = layers[i + 1]
            cols = nxt.weight.shape[1]
            # outgoing weights: the next layer's input columns of the unit; a linear layer after a
            # conv and a flatten reads cols / channels columns per channel, channel-major
            spread = cols // d.numel() if isinstance(nxt, nn.Linear) and not isinstance(m, nn.Linear) else 1
            if getattr(nxt, "groups", 1) == 1 and cols == spread * d.numel():
                scale = keep.repeat_interleave(spread).to(nxt.weight.dtype)
                _merge(actions, f"{nxt_name}.weight", scale=scale.view(1, -1, *([1] * (nxt.weight.dim() - 2))))
        for act in actions.values():
            # a weight both into a dormant unit and out of another ends 0, not re-drawn (as in the
            # ReDo code, which zeroes outgoing weights after re-drawing incoming ones)
            if isinstance(act.keep, torch.Tensor) and isinstance(act.scale, torch.Tensor):
                act.keep = act.keep | (act.scale == 0).expand(act.keep.shape)
        return ResetEvent(actions, description=f"redo tau {self.options.tau}: {total} dormant units")

    @property
    def in_round(self) -> bool:
        return self.options.every > 0

    def cadence(self) -> Cadence:  # asked only when in_round, i.e. every > 0
        return Cadence("step", self.options.every, "every")

    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        if ctx.step % self.options.every:
            return None
        return self.event(ctx)  # nothing dormant: no actions, which the caller counts as no event


def _merge(actions: dict[str, Action], name: str, keep=None, scale=None) -> None:
    """A tensor can be both a dormant unit's incoming (rows) and another's outgoing (columns)."""
    act = actions.setdefault(name, Action())
    if keep is not None:
        act.keep = keep
    if scale is not None:
        act.scale = scale
