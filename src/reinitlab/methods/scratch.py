"""Cold start: the whole network re-drawn at every round (stage) start, the "full reset" arm of the
FIRE authors' and the DASH code's harnesses. Under a staged protocol it is the reference a reset
method must beat besides `baseline` (the warm start): training every stage from scratch on its data."""
from ..core.method import Method, ResetContext, register
from ..core.reset import ResetEvent
from .base import reset_groups_from


@register
class Scratch(Method):
    name = "scratch"
    summary = "re-draw the whole network every round (cold start; a staged protocol's reference)"

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(reset_groups_from(ctx.groups, 0), description="reset every group")
