"""Re-draw the classifier head (the group `head`) at the start of every round; everything below it
is kept."""
from ..core.method import Method, ResetContext, register
from ..core.reset import ResetEvent
from .base import reset_groups_from


@register
class FC(Method):
    name = "fc"
    summary = "re-draw the head (classifier) every round"

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(reset_groups_from(ctx.groups, ctx.groups.K), description="reset head")
