"""Selective weight reinitialization (SWR, CoLLAs 2025), inside every round.

Every `every` optimizer steps, each conv and linear weight tensor re-draws its `rate` share: the
elements with the lowest score (|w|, or |w * grad| with score=utility, the gradient of the step just
taken) among those older than `maturity` steps. A tensor owes rate * n elements per event; the
fractional remainder carries over to its next event, so small tensors and small rates still re-draw
their share. Ages count optimizer steps since an element was drawn (the run's start or its last
re-draw) across rounds. Ties go to the earlier position. Round starts reset nothing (a fresh
optimizer and schedule only); the optimizer's momentum of a re-drawn element is cleared."""
import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..core.method import Cadence, Method, ResetContext, register
from ..core.reset import Action, ResetEvent
from .base import in_range, weighted_layers


@dataclass
class SWROptions:
    every: int = 10  # steps between events
    rate: float = 1e-3  # share of each tensor re-drawn per event
    maturity: int = 50  # only elements older than this many steps are candidates (a quick-preset round is 77-308 steps)
    score: Literal["magnitude", "utility"] = "magnitude"  # |w|, or |w * grad|

    def validate(self):
        in_range("every", self.every, 1, 10**9)
        in_range("rate", self.rate, 0.0, 1.0, lo_open=True)
        in_range("maturity", self.maturity, 0, 10**12)


@register
class SWR(Method):
    name = "swr"
    summary = "SWR: every `every` steps re-draw the lowest-|w| (or |w*g|) `rate` of each weight among mature ones"
    Options = SWROptions

    def __init__(self, **options):
        super().__init__(**options)
        self.born: dict[str, torch.Tensor] = {}  # per element: the step count at its last draw
        self.owed: dict[str, float] = {}
        self.steps = 0  # optimizer steps seen, all rounds

    @property
    def in_round(self) -> bool:
        return True

    def cadence(self) -> Cadence:
        # born starts at 0 and ages count the run's steps, so the first event that can replace
        # anything comes after `maturity` steps of the whole run
        o = self.options
        return Cadence("step", o.every, "every", mature_after=o.maturity, maturity_setting="maturity")

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(description="no reset at the round start (SWR acts every step)")

    def step_event(self, ctx: ResetContext) -> ResetEvent | None:
        self.steps += 1
        o = self.options
        if ctx.step % o.every:
            return None
        params = ctx.params()
        actions = {}
        for mname, _ in weighted_layers(ctx.model):
            name = f"{mname}.weight"
            p = params[name]
            born = self.born.setdefault(name, torch.zeros(p.shape, dtype=torch.int32, device=p.device))
            owed = self.owed.get(name, 0.0) + o.rate * p.numel()
            k = math.floor(owed)
            self.owed[name] = owed - k
            if k == 0:
                continue
            mature = (self.steps - born) > o.maturity
            n_mature = int(mature.sum())
            k = min(k, n_mature)
            if k == 0:
                continue
            score = p.detach().abs()
            if o.score == "utility":
                score = score * (p.grad.detach().abs() if p.grad is not None else 0.0)
            score = torch.where(mature, score.float(), torch.full_like(score, float("inf"), dtype=torch.float32))
            order = torch.sort(score.flatten(), stable=True).indices[:k]
            keep = torch.ones(p.numel(), dtype=torch.bool, device=p.device)
            keep[order] = False
            born.view(-1)[order] = self.steps
            actions[name] = Action(keep=keep.view(p.shape))
        if not actions:
            return None
        return ResetEvent(actions, description=f"swr step {ctx.step}")

    def state_dict(self) -> dict:
        return {"born": {k: v.clone() for k, v in self.born.items()}, "owed": dict(self.owed), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.born = {k: v.clone() for k, v in state["born"].items()}
        self.owed = dict(state["owed"])
        self.steps = int(state["steps"])
