"""Dense-sparse-dense style magnitude reset (after Han et al., ICLR 2017): per tensor, the `keep`
fraction of elements with the largest |w| is kept and the rest re-drawn. Exactly round(keep * n)
elements are kept; among equal magnitudes the earlier position is kept, the same on every device."""
from ..core.method import Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import KeepOptions, top_fraction_mask


@register
class DSD(Method):
    name = "dsd"
    summary = "magnitude mask: keep the `keep` fraction of largest |w| per tensor, re-draw the rest"
    Options = KeepOptions

    def event(self, ctx: ResetContext) -> ResetEvent:
        actions = {n: Action(keep=top_fraction_mask(p.abs(), self.options.keep)) for n, p in ctx.params().items()}
        return ResetEvent(actions, description=f"magnitude keep {self.options.keep}")
