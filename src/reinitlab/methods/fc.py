"""Re-draw the classifier head (the group `head`) at the start of every round; everything below it
is kept. `every=N` also re-draws it every N optimizer steps inside each round, `every_epochs=N` after
every N-th epoch of a round (not after a round's last): the periodic last-layer resets of Nikishin et
al. 2022 ("The primacy bias in deep reinforcement learning"), whose code re-creates the heads and
their optimizer statistics every `reset_interval` steps; here the optimizer state of the re-drawn head
is cleared the same way."""
from dataclasses import dataclass

from ..core.method import Cadence, Fidelity, InRoundReach, Method, ResetContext, register
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

    def in_round_reach(self, steps: int, epochs) -> InRoundReach | None:
        """The step events and the epoch events together, each by its own cadence."""
        o = self.options
        reaches = [c.reach(steps, epochs) for c in (Cadence("step", o.every, "every") if o.every else None,
                                                    Cadence("epoch", o.every_epochs, "every_epochs") if o.every_epochs
                                                    else None) if c is not None]
        if not reaches:
            return None
        firsts = [r.first for r in reaches if r.first is not None]
        events = sum(r.events for r in reaches)
        return InRoundReach(events, min(firsts) if firsts else None, "" if events else "; ".join(r.why for r in reaches))

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
