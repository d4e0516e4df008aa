from dataclasses import dataclass, field

from ..reset import ResetEvent
from . import register
from .base import Method, ResetContext, reset_groups_from


@dataclass
class LLFOptions:
    # first group re-drawn; "" = the top block (top block and head, as in Zhou et al.)
    start: str = field(default="", metadata={"unset": "top block"})


@register
class LLF(Method):
    name = "llf"
    summary = "later-layer forgetting: re-draw every group from `start` (default: the top block) upward"
    Options = LLFOptions

    def event(self, ctx: ResetContext) -> ResetEvent:
        g = ctx.groups
        k = g.index(self.options.start) if self.options.start else max(g.K - 1, 1)
        return ResetEvent(reset_groups_from(g, k), description=f"reset {g.names[k]}..{g.head}")
