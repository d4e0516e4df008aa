"""Dynamic Neural Regeneration (DNR, NeurIPS 2024), a data-aware reset: per tensor, the `keep`
fraction of elements with the largest SNIP score |w * dL/dw| is kept and the rest re-drawn; the
gradient is summed over 4 training batches (BatchNorm in train mode, running statistics untouched)
and recomputed every round. Exactly round(keep * n) elements are kept; among equal scores the
earlier position is kept."""
import torch

from ..core.method import Method, ResetContext, register
from ..core.reset import Action, ResetEvent, preserve_buffers
from .base import KeepOptions, top_fraction_mask


@register
class DNR(Method):
    name = "dnr"
    summary = "data-aware: keep the top `keep` of each tensor by |w*grad| on training batches, re-draw the rest"
    Options = KeepOptions

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
