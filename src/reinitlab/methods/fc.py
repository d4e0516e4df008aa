"""Re-draw the classifier head (the group `head`) at the start of every round; everything below it
is kept. `every=N` also re-draws it every N optimizer steps inside each round, `every_epochs=N` after
every N-th epoch of a round (not after a round's last): the periodic last-layer resets of Nikishin et
al. 2022 ("The primacy bias in deep reinforcement learning"), whose code re-creates the heads and
their optimizer statistics every `reset_interval` steps; here the optimizer state of the re-drawn head
is cleared the same way."""
from dataclasses import dataclass

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import ResetEvent
from .base import in_range, reset_groups_from


@dataclass
class FCOptions:
    every: int = 0  # >0: also every N optimizer steps within a round
    every_epochs: int = 0  # >0: also after every N-th epoch within a round (not after a round's last)

    def validate(self):
        in_range("every", self.every, 0, 10**9)
        in_range("every_epochs", self.every_epochs, 0, 10**6)


@register
class FC(Method):
    name = "fc"
    summary = "re-draw the head (classifier) every round; every= / every_epochs= also inside rounds"
    Options = FCOptions
    fidelity = (
        Fidelity("the head group (registry models: the last linear layer) re-drawn",
                 "the primacy-bias code: the heads of the actor and the critic (their layers after the shared "
                 "encoder) re-created",
                 "`llf:start=<group>` re-draws more groups at round starts; periodically only the head"),
        Fidelity("`every=N` counts optimizer steps within a round, from its first step",
                 "reset_interval counts environment steps over the whole run", "`every=` the same number of steps"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(reset_groups_from(ctx.groups, ctx.groups.K), description="reset head")

    @property
    def in_round(self) -> bool:
        return self.options.every > 0 or self.options.every_epochs > 0

    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        if not self.options.every or ctx.step % self.options.every:
            return None
        return ResetEvent(reset_groups_from(ctx.groups, ctx.groups.K), description=f"reset head at step {ctx.step}")

    def epoch_event(self, ctx: ResetContext) -> ResetEvent | None:
        if not self.options.every_epochs or ctx.epoch % self.options.every_epochs:
            return None
        return ResetEvent(reset_groups_from(ctx.groups, ctx.groups.K), description=f"reset head after epoch {ctx.epoch}")
