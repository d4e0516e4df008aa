from .base import Protocol, Stage, StagePlan, register


@register
class Rounds(Protocol):
    """The source paper's protocol: every round trains on the same training subset; its epochs are
    the method's own plan (`long`: one round of (R+1)*E)."""

    name = "rounds"
    summary = "every round trains on the same training subset (the source paper's protocol)"
    staged = False

    def stage(self, s: int, plan: StagePlan) -> Stage:
        return Stage()
