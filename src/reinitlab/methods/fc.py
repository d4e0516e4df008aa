from ..reset import ResetEvent
from . import register
from .base import Method, ResetContext, reset_groups_from


@register
class FC(Method):
    name = "fc"
    summary = "re-draw the head (classifier) every round"

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(reset_groups_from(ctx.groups, ctx.groups.K), description="reset head")
