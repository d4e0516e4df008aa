"""DASH (Shin et al., NeurIPS 2024): shrink each weight by how well it agrees with the training
direction. Per conv (out, in) kernel and per linear row, c = cos(w, -g) with g the loss gradient
summed over the training batches; w <- clamp(c, lam, 1) * w. A conv or linear bias shrinks as one
vector by its own cosine (as the DASH code does); norm layers are untouched; nothing is re-drawn."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import in_range, training_gradients, weighted_layers


@dataclass
class DASHOptions:
    lam: float = 0.3  # the smallest shrink factor

    def validate(self):
        in_range("lam", self.lam, 0.0, 1.0)


def dash_scale(w: torch.Tensor, g: torch.Tensor, lam: float) -> torch.Tensor:
    """clamp(cos(w, -g), lam, 1) per (out, in) kernel (conv) or per row (linear), shaped to
    broadcast against w. A kernel whose weight or gradient is zero has cosine 0: it shrinks by lam."""
    rows = w.shape[:2] if w.dim() > 2 else w.shape[:1]
    c = F.cosine_similarity(w.detach().reshape(*rows, -1), -g.reshape(*rows, -1), dim=-1)
    return c.clamp(lam, 1.0).reshape(*rows, *([1] * (w.dim() - len(rows))))


@register
class DASH(Method):
    name = "dash"
    summary = "DASH: shrink each conv kernel / linear row by clamp(cos(w, -grad), lam, 1)"
    Options = DASHOptions
    redraws = False
    fidelity = (
        Fidelity("the gradient summed over 4 training batches",
                 "an exponential moving average over the data loader",
                 "not offered"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        lam = self.options.lam
        grads = training_gradients(ctx)
        params = ctx.params()
        actions = {}
        for mname, m in weighted_layers(ctx.model):
            w = f"{mname}.weight"
            actions[w] = Action(scale=dash_scale(params[w], grads[w], lam))
            if m.bias is not None:
                b = f"{mname}.bias"
                c = F.cosine_similarity(params[b].detach().reshape(1, -1), -grads[b].reshape(1, -1))
                actions[b] = Action(scale=float(c.clamp(lam, 1.0)))
        return ResetEvent(actions, description=f"dash lam {lam}")
