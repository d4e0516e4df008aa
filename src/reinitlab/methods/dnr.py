"""Dynamic Neural Regeneration (DNR, NeurIPS 2024), a data-aware reset: per tensor, the `keep`
fraction of elements with the largest SNIP score |w * dL/dw| is kept and the rest re-drawn; the
gradient is summed over 4 training batches (BatchNorm in train mode, running statistics untouched)
and recomputed every round. Exactly round(keep * n) elements are kept; among equal scores the
earlier position is kept.

`scope=global` applies LURE's rule instead (Ramkumar, Arani, Zonooz, "Learn, Unlearn and Relearn",
TMLR 2023): one threshold over every parameter of the model, the int((1 - keep) * n)-th smallest of
|w| * sum_b |g_b| (the per-batch gradients' magnitudes summed); every element at or below it is
re-drawn, so ties at the threshold (zero scores) may re-draw more than 1 - keep. With the default keep
0.8 this is LURE's snip_size 0.2."""
from dataclasses import dataclass
from typing import Literal

import torch

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent, preserve_buffers
from .base import KeepOptions, top_fraction_mask


@dataclass
class DNROptions(KeepOptions):
    scope: Literal["tensor", "global"] = "tensor"  # a keep share per tensor, or LURE's one threshold over the model


@register
class DNR(Method):
    name = "dnr"
    summary = ("data-aware: keep the top `keep` of each tensor (scope=global: of the model) by |w*grad| on "
               "training batches, re-draw the rest")
    Options = DNROptions
    fidelity = (
        Fidelity("`scope=global`: every parameter is scored and re-drawn below the threshold, from the re-draw "
                 "source (BatchNorm weights to 1)",
                 "LURE: every parameter is scored, but only tensors named `weight` are re-drawn (biases kept), "
                 "from kaiming_uniform_(a=√5), which draws BatchNorm weights from U(−1, 1)",
                 "`redraw=peer` for the conv/linear draw; the rest not offered"),
        Fidelity("scores on the run's 4 statistics batches", "len(loader)/32 batches of 100 from a 'snip set', "
                 "the first snip_size share of the current training data", "not offered"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        model = ctx.model
        params = ctx.params()
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        magnitudes = self.options.scope == "global"
        with preserve_buffers(model), torch.enable_grad():
            for x, y in ctx.batches():
                model.zero_grad(set_to_none=True)
                ctx.loss_fn(model(x), y).backward()
                for n, p in params.items():
                    if p.grad is not None:
                        grads[n] += p.grad.abs() if magnitudes else p.grad
        model.zero_grad(set_to_none=True)
        scores = {n: (p.detach() * grads[n]).abs() for n, p in params.items()}
        if magnitudes:
            return self._global(scores)
        actions = {n: Action(keep=top_fraction_mask(s, self.options.keep)) for n, s in scores.items()}
        return ResetEvent(actions, description=f"snip keep {self.options.keep}")

    def _global(self, scores: dict[str, torch.Tensor]) -> ResetEvent:
        flat = torch.cat([s.flatten().float().cpu() for s in scores.values()])
        k = int(round(1 - self.options.keep, 12) * flat.numel())  # LURE's int(snip_size * n), 1 - 0.8 read as 0.2
        if k < 1:
            return ResetEvent(description=f"snip global keep {self.options.keep}: nothing below the threshold")
        threshold = float(flat.kthvalue(k).values)
        actions = {n: Action(keep=s.float() > threshold) for n, s in scores.items()}
        redrawn = sum(int((~a.keep).sum()) for a in actions.values())
        return ResetEvent(actions, description=f"snip global keep {self.options.keep}: "
                                               f"{redrawn / flat.numel():.3f} re-drawn (threshold {threshold:.3g})")
