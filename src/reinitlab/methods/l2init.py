"""L2-Init (Kumar et al. 2023): no reset; every round's loss gains lam * ||theta - theta0||^2, theta0
the run's initial values of every parameter (BatchNorm included). Rounds still start with a fresh
optimizer and schedule, so it costs what the resetting methods cost."""
from dataclasses import dataclass

import torch

from ..core.method import Fidelity, Method, ResetContext, register
from ..core.reset import ResetEvent
from .base import in_range


@dataclass
class L2InitOptions:
    lam: float = 1e-3

    def validate(self):
        in_range("lam", self.lam, 0.0, 1e3)


@register
class L2Init(Method):
    name = "l2init"
    summary = "L2-Init: no reset; the loss gains lam*||theta - theta0||^2 in every round"
    Options = L2InitOptions
    redraws = False
    fidelity = (
        Fidelity("lam·‖θ − θ0‖², in every round from round 0 on",
                 "the harness: (coef/2)·‖θ − θ0‖², not during the first data chunk of its warm-start "
                 "benchmark",
                 "`lam=` coef/2; the penalty in round 0: not offered"),
    )

    @property
    def needs_initial(self) -> bool:
        return True

    @property
    def has_loss_term(self) -> bool:
        return self.options.lam > 0.0

    def event(self, ctx: ResetContext) -> ResetEvent:
        return ResetEvent(description="no reset (L2-Init penalty)")

    def loss_term(self, ctx: ResetContext) -> torch.Tensor:
        w0 = ctx.initial
        terms = [(p - w0[n]).pow(2).sum() for n, p in ctx.model.named_parameters()]
        return self.options.lam * torch.stack(terms).sum()
