from dataclasses import dataclass

from ..reset import Action, ResetEvent
from . import register
from .base import Method, ResetContext, in_range, top_fraction_mask


@dataclass
class DSDOptions:
    keep: float = 0.8  # same kept fraction as ke's default split_rate, so the two compare directly

    def validate(self):
        in_range("keep", self.keep, 0.0, 1.0, lo_open=True, hi_open=True)


@register
class DSD(Method):
    name = "dsd"
    summary = "magnitude mask: keep the `keep` fraction of largest |w| per tensor, re-draw the rest"
    Options = DSDOptions

    def event(self, ctx: ResetContext) -> ResetEvent:
        actions = {n: Action(keep=top_fraction_mask(p.abs(), self.options.keep)) for n, p in ctx.params().items()}
        return ResetEvent(actions, description=f"magnitude keep {self.options.keep}")
