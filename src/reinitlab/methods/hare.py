"""Hare & Tortoise (Lee, Cho, Kim, Kim, Min, Choo, Lyle, "Slow and Steady Wins the Race", ICML 2024):
the trained network (the hare) is periodically set to a slow exponential moving average of its own
weights (the tortoise).

The tortoise starts as the run's initial weights. After every optimizer step it moves towards the hare,
tortoise <- momentum * tortoise + (1 - momentum) * hare, for every parameter and every floating-point
buffer (BatchNorm's running statistics; not its integer batch count). After epoch e of a round the hare
takes the tortoise's values, parameters and those buffers, when (e - 1) % every_epochs == 0 (epochs 1,
11, 21, ... with the default 10; from_first=false: epochs 10, 20, ...). The optimizer state survives a
reset (nothing is re-drawn or zeroed), and so does the tortoise across rounds; a round start changes
nothing. The run's accuracies are the hare's.

`at_round_start=true` also sets the hare to the tortoise at every round start. Under a staged
protocol whose tasks are one epoch long (permuted tasks, as in the continual preset) that is where the
trainer's counter puts its resets: after each task's first and only epoch, which here is the round's
last, where no in-round event comes (the next round's start does).

Where the numbers come from. The authors' repository (dojeon-ai/hare-tortoise) is not in the stored
material, and the stored copies of the paper could only be read up to its introduction. A trainer and
experiment scripts with the paper's three benchmarks (cifar10_resnet18, cifar100_vit-ti, tig_vgg16;
warm-start and continual settings) were found in the stored code index, in a repository it does not
name: momentum (`trainer.ema`) 0.999 per optimizer step, the hare reset every 10 epochs
(`trainer.hare_tortoise.reset_every`), checked on the trainer's 0-based epoch counter (epoch % 10 == 0:
after the 1st, 11th, 21st epoch of each task), parameters and buffers averaged and copied, AdamW's state
kept. Those are the defaults here; from_first=true reproduces the counter's phase.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..core.groups import Groups
from ..core.method import Cadence, Fidelity, InRoundReach, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import in_range


@dataclass
class HareOptions:
    momentum: float = 0.999  # of the tortoise's moving average, per optimizer step
    every_epochs: int = 10  # the hare is set to the tortoise every this many epochs of a round
    from_first: bool = True  # after epochs 1, 1+N, 1+2N, ... (the authors' counter); false: N, 2N, ...
    at_round_start: bool = False  # also at every round (stage) start: what the counter does to one-epoch tasks

    def validate(self):
        in_range("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        in_range("every_epochs", self.every_epochs, 1, 10**6)


def _averaged_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    # LW's frozen standardizations (reinit_*) are not the model's own statistics
    return {n: b for n, b in model.named_buffers()
            if b.is_floating_point() and not n.rpartition(".")[2].startswith("reinit_")}


@register
class Hare(Method):
    name = "hare"
    summary = "Hare & Tortoise: every `every_epochs` epochs set the network to a slow moving average of its weights"
    Options = HareOptions
    redraws = False
    fidelity = (
        Fidelity("momentum 0.999 per step; the hare reset after epochs 1, 11, 21, ... of a round",
                 "the trainer and scripts found in the code index (authors' repository not stored; the paper "
                 "not readable past its introduction): the same",
                 "default"),
        Fidelity("no reset after a round's last epoch (the loop asks for no in-round event there)",
                 "the trainer resets after any epoch whose counter qualifies, the last one too", "not offered"),
        Fidelity("the run's accuracies are the hare's", "the trainer logs both the hare's and the tortoise's",
                 "not offered"),
        Fidelity("after a reset the tortoise keeps moving by (1 - momentum) of each step",
                 "the trainer resets with `fast.data = slow.data`, so hare and tortoise share storage until the "
                 "next average: the first optimizer step after a reset moves the tortoise by the whole step (it "
                 "then equals the hare)",
                 "not offered"),
        Fidelity("integer buffers (BatchNorm's batch count) are neither averaged nor copied",
                 "every buffer averaged and copied", "same results (the count is unused with a set momentum)"),
    )

    def __init__(self, **options):
        super().__init__(**options)
        self.tortoise: dict[str, torch.Tensor] = {}
        self._params: list[torch.Tensor] = []
        self._buffers: list[torch.Tensor] = []
        self._names: list[str] = []

    def attach(self, model: nn.Module, groups: Groups) -> None:
        params = dict(model.named_parameters())
        buffers = _averaged_buffers(model)
        self.tortoise = {n: t.detach().clone() for n, t in {**params, **buffers}.items()}
        self._params = [params[n] for n in params]
        self._buffers = [buffers[n] for n in buffers]
        self._names = list(params) + list(buffers)

    def in_round_reach(self, steps: int, epochs) -> InRoundReach:
        """Resets after epochs 1, 1+N, 1+2N, ... of a round (or N, 2N, ... with from_first=false), never
        after a round's last epoch."""
        o = self.options
        if o.at_round_start and len(epochs) > 1:
            return None  # it acts at every round start after the first, whatever the epochs
        if not o.from_first:
            return Cadence("epoch", o.every_epochs, "every_epochs").reach(steps, epochs)
        events, first = 0, None
        for r, e in enumerate(epochs):
            n = (e - 2) // o.every_epochs + 1 if e >= 2 else 0
            if n and first is None:
                first = (r, 1)
            events += n
        why = "" if events else (f"hare sets the network to the tortoise after epoch 1 of a round and every "
                                 f"every_epochs={o.every_epochs} epochs after, never after a round's last, and a round "
                                 f"of this run trains at most {max(epochs, default=0)} epoch(s); train epochs >= 2")
        return InRoundReach(events, first, why)

    @property
    def in_round(self) -> bool:
        return True

    def event(self, ctx: ResetContext) -> ResetEvent:
        if self.options.at_round_start:
            return self._to_tortoise(ctx, "hare set to the tortoise at the round start")
        return ResetEvent(description="no reset at the round start (the hare is set to the tortoise inside rounds)")

    @torch.no_grad()
    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        slow = [self.tortoise[n] for n in self._names]
        fast = [t.detach() for t in self._params + self._buffers]
        torch._foreach_mul_(slow, self.options.momentum)
        torch._foreach_add_(slow, fast, alpha=1 - self.options.momentum)
        return None

    def epoch_event(self, ctx: ResetContext) -> ResetEvent | None:
        o = self.options
        if (ctx.epoch - 1 if o.from_first else ctx.epoch) % o.every_epochs:
            return None
        return self._to_tortoise(ctx, f"hare set to the tortoise after epoch {ctx.epoch}")

    def _to_tortoise(self, ctx: ResetContext, description: str) -> ResetEvent:
        params = dict(ctx.model.named_parameters())
        actions = {n: Action(scale=0.0, offset=self.tortoise[n].clone()) for n in params}
        buffers = {n: Action(scale=0.0, offset=self.tortoise[n].clone()) for n in _averaged_buffers(ctx.model)
                   if n in self.tortoise}
        return ResetEvent(actions, description=description, buffer_actions=buffers)

    def state_dict(self) -> dict:
        return {"tortoise": {n: t.clone() for n, t in self.tortoise.items()}}

    def load_state_dict(self, state: dict) -> None:
        for n, t in state["tortoise"].items():
            self.tortoise[n].copy_(t)  # the same names attach() made: the same model
