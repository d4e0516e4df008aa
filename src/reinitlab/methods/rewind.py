"""Weight rewinding (as in lottery-ticket work): every round starts from the whole network's weights
(and BatchNorm statistics) after epoch `rewind_epoch` of round 0."""
from dataclasses import dataclass

from ..core.method import Method, ResetContext, register
from ..core.reset import ResetEvent
from .base import in_range, reset_groups_from


@dataclass
class RewindOptions:
    rewind_epoch: int = 1

    def validate(self):
        in_range("rewind_epoch", self.rewind_epoch, 1, 10**6)


@register
class Rewind(Method):
    name = "rewind"
    summary = "weight rewinding: every round back to the weights after epoch `rewind_epoch` of round 0"
    Options = RewindOptions
    redraws = False  # its source is rewind by definition

    @property
    def redraw(self) -> str:
        return "rewind"

    @property
    def rewind_epoch(self) -> int:
        return self.options.rewind_epoch

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(reset_groups_from(ctx.groups, 0), description=f"rewind to epoch {self.options.rewind_epoch}")
