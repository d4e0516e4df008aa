"""Shrink and perturb (Ash and Adams, NeurIPS 2020): w = shrink*w + perturb*s on every tensor, s
from the re-draw source. `buffers=fresh` takes BatchNorm running statistics from the source too (as
their code does); `every_epochs=N` also applies it inside each round, after every N-th epoch.

A trap on BatchNorm networks: the default shrink 0.4, on a BatchNorm network trained at a constant
learning rate, collapsed evaluation accuracy from 0.909 to 0.239 in a user's report (not a bug).
The likely reasons: a weight followed by BatchNorm is scale-invariant, so shrinking it by 0.4 scales
its effective step size by about 1/0.4^2 = 6 at the same learning rate; and with buffers=keep the
running statistics that evaluation uses still describe the unshrunk weights until training has
refreshed them. What to do instead: keep a schedule that starts low after each shrink (reinitlab's
rounds re-warm from a small learning rate; an in-round shrink, every_epochs, does not), use a milder
shrink (0.8 or more), or buffers=fresh; and look at validation accuracy right after the first shrink
(metrics.jsonl) before trusting a run's end result."""
from dataclasses import dataclass
from typing import Literal

from ..core.method import Cadence, Fidelity, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import in_range


@dataclass
class SPOptions:
    shrink: float = 0.4  # lambda
    perturb: float = 0.1  # sigma, as a multiple of a fresh draw
    buffers: Literal["keep", "fresh"] = "keep"  # BatchNorm running statistics: kept, or from the source
    every_epochs: int = 0  # >0: also after every N-th epoch within a round (not after a round's last)

    def validate(self):
        in_range("shrink", self.shrink, 0.0, 1.0)
        in_range("perturb", self.perturb, 0.0, 10.0)
        in_range("every_epochs", self.every_epochs, 0, 10**6)


@register
class SP(Method):
    name = "sp"
    summary = "shrink and perturb every tensor: w = shrink*w + perturb*fresh"
    Options = SPOptions
    fidelity = (
        Fidelity("BatchNorm running statistics are kept",
                 "taken from the fresh model",
                 "`buffers=fresh`"),
        Fidelity("applied at every round start (same data)",
                 "before training on each new chunk of data",
                 "— (the protocol's rounds are the chunks); `every_epochs=N` also applies it inside rounds"),
        Fidelity("w = 0.4·w + 0.1·fresh",
                 "the FIRE authors' harness: w = (1−c)·w + c·w0 on the parameters",
                 "`sp:shrink=0.8,perturb=0.2,redraw=init` for c = 0.2"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        o = self.options
        actions = {n: Action(keep=True, scale=o.shrink, noise=o.perturb) for n in ctx.params()}
        buffers = []
        if o.buffers == "fresh":
            # running statistics only; LW-style inserted standardizations are not the model's own
            buffers = [n for n, _ in ctx.model.named_buffers() if not n.rpartition(".")[2].startswith("reinit_")]
        return ResetEvent(actions, description=f"shrink {o.shrink} perturb {o.perturb}", fresh_buffers=buffers)

    @property
    def in_round(self) -> bool:
        return self.options.every_epochs > 0

    def cadence(self) -> Cadence | None:
        return Cadence("epoch", self.options.every_epochs, "every_epochs") if self.options.every_epochs > 0 else None

    def epoch_event(self, ctx: ResetContext) -> ResetEvent | None:
        if ctx.epoch % self.options.every_epochs:
            return None
        return self.event(ctx)
