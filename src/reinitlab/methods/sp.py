"""Shrink and perturb (Ash and Adams, NeurIPS 2020): w = shrink*w + perturb*s on every tensor, s
from the re-draw source. `buffers=fresh` takes BatchNorm running statistics from the source too (as
their code does); `every_epochs=N` also applies it inside each round, after every N-th epoch.

`step` grades it by depth, as the soft reset of BRB (Miklautz et al., "Breaking the Reclustering
Barrier", ICLR 2025) does per ResNet stage: the group k groups below the head shrinks by
shrink_k = min(1, shrink + k*step) and takes perturb_k = perturb*(1 - shrink_k)/(1 - shrink), so with
perturb = 1 - shrink every group interpolates towards the source (w = a*w + (1-a)*s) and a group whose
shrink reaches 1 is left alone. BRB's soft reset: `sp:shrink=0.7,perturb=0.3,every_epochs=2,step=0.05`
(its default alpha 0.7 every 2 epochs; its step 0.05 is per stage, here per group).

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
from ..util.errors import UserError
from .base import in_range


@dataclass
class SPOptions:
    shrink: float = 0.4  # lambda
    perturb: float = 0.1  # sigma, as a multiple of a fresh draw
    buffers: Literal["keep", "fresh"] = "keep"  # BatchNorm running statistics: kept, or from the source
    every_epochs: int = 0  # >0: also after every N-th epoch within a round (not after a round's last)
    step: float = 0.0  # shrink grows by this per group below the head (BRB's per-stage soft reset)

    def validate(self):
        in_range("shrink", self.shrink, 0.0, 1.0)
        in_range("perturb", self.perturb, 0.0, 10.0)
        in_range("every_epochs", self.every_epochs, 0, 10**6)
        in_range("step", self.step, 0.0, 1.0)
        if self.step > 0 and self.shrink == 1.0:
            raise UserError(f"step={self.step} needs shrink < 1 (with shrink=1 nothing is shrunk or perturbed)")


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
        Fidelity("`step`: every group graded by its depth, BatchNorm and linear layers included",
                 "BRB: only the listed ResNet stages' convs graded (deepest first); linear and BatchNorm layers "
                 "take the base alpha; BatchNorm affine only with reset_batchnorm (off by default), its running "
                 "statistics never; the embedding layer not reset",
                 "not offered"),
        Fidelity("the source draw: the model's initializer (registry: He-normal fan-out convs)",
                 "BRB: kaiming_uniform_ (a=0) for conv and linear weights, biases U(+-1/sqrt(fan_in))",
                 "not offered (`redraw=peer` is kaiming_uniform_ with a=√5)"),
    )

    def event(self, ctx: ResetContext) -> ResetEvent:
        o = self.options
        names = ctx.groups.names
        group_of = ctx.groups.group_of()
        actions = {}
        for n in ctx.params():
            shrink, perturb = self._graded(len(names) - 1 - names.index(group_of[n]))
            actions[n] = Action(scale=shrink, noise=perturb)
        buffers = []
        if o.buffers == "fresh":
            # running statistics only; LW-style inserted standardizations are not the model's own
            buffers = [n for n, _ in ctx.model.named_buffers() if not n.rpartition(".")[2].startswith("reinit_")]
        graded = f", step {o.step} per group" if o.step else ""
        return ResetEvent(actions, description=f"shrink {o.shrink} perturb {o.perturb}{graded}", fresh_buffers=buffers)

    def _graded(self, depth: int) -> tuple[float, float]:
        """(shrink, perturb) of a group `depth` groups below the head."""
        o = self.options
        if not o.step:
            return o.shrink, o.perturb
        shrink = min(1.0, o.shrink + depth * o.step)
        return shrink, o.perturb * (1.0 - shrink) / (1.0 - o.shrink)

    @property
    def in_round(self) -> bool:
        return self.options.every_epochs > 0

    def cadence(self) -> Cadence:  # asked only when in_round, i.e. every_epochs > 0
        return Cadence("epoch", self.options.every_epochs, "every_epochs")

    def epoch_event(self, ctx: ResetContext) -> ResetEvent | None:
        if ctx.epoch % self.options.every_epochs:
            return None
        return self.event(ctx)
