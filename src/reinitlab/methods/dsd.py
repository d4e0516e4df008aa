from ..reset import Action, ResetEvent
from . import register
from .base import KeepOptions, Method, ResetContext, top_fraction_mask


@register
class DSD(Method):
    name = "dsd"
    summary = "magnitude mask: keep the `keep` fraction of largest |w| per tensor, re-draw the rest"
    Options = KeepOptions

    def event(self, ctx: ResetContext) -> ResetEvent:
        actions = {n: Action(keep=top_fraction_mask(p.abs(), self.options.keep)) for n, p in ctx.params().items()}
        return ResetEvent(actions, description=f"magnitude keep {self.options.keep}")
