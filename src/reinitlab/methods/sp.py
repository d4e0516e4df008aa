from dataclasses import dataclass

from ..reset import Action, ResetEvent
from . import register
from .base import Method, ResetContext, in_range


@dataclass
class SPOptions:
    shrink: float = 0.4  # lambda
    perturb: float = 0.1  # sigma, as a multiple of a fresh draw

    def validate(self):
        in_range("shrink", self.shrink, 0.0, 1.0)
        in_range("perturb", self.perturb, 0.0, 10.0)


@register
class SP(Method):
    name = "sp"
    summary = "shrink and perturb every tensor: w = shrink*w + perturb*fresh"
    Options = SPOptions

    def event(self, ctx: ResetContext) -> ResetEvent:
        o = self.options
        actions = {n: Action(keep=True, scale=o.shrink, noise=o.perturb) for n in ctx.params()}
        return ResetEvent(actions, description=f"shrink {o.shrink} perturb {o.perturb}")
