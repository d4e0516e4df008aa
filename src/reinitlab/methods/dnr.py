from dataclasses import dataclass

import torch

from ..reset import Action, ResetEvent, preserve_buffers
from . import register
from .base import Method, ResetContext, in_range, top_fraction_mask


@dataclass
class DNROptions:
    keep: float = 0.8  # fraction of each tensor kept, by SNIP score |w * grad|

    def validate(self):
        in_range("keep", self.keep, 0.0, 1.0, lo_open=True, hi_open=True)


@register
class DNR(Method):
    name = "dnr"
    summary = "data-aware: keep the top `keep` of each tensor by |w*grad| on training batches, re-draw the rest"
    Options = DNROptions

    def event(self, ctx: ResetContext) -> ResetEvent:
        model = ctx.model
        params = ctx.params()
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        with preserve_buffers(model), torch.enable_grad():
            for x, y in ctx.batches():
                model.zero_grad(set_to_none=True)
                ctx.loss_fn(model(x), y).backward()
                for n, p in params.items():
                    if p.grad is not None:
                        grads[n] += p.grad
        model.zero_grad(set_to_none=True)
        actions = {n: Action(keep=top_fraction_mask((p.detach() * grads[n]).abs(), self.options.keep))
                   for n, p in params.items()}
        return ResetEvent(actions, description=f"snip keep {self.options.keep}")
