import torch

from ..util.errors import UserError
from .base import Protocol, Stage, StagePlan, register


@register
class WarmStart(Protocol):
    """Ash & Adams (2020): stage 0 trains on a fixed share `first_fraction` of the training subset
    (drawn by the data seed), stage 1 on all of it. Stage 0 trains round(E / first_fraction) epochs,
    about as many optimizer steps as a full stage, as the FIRE authors' harness does (10% for 10x the
    epochs); with `patience` both stages end once their data is fitted."""

    name = "warm_start"
    summary = "stage 0: a share first_fraction of the subset (for E/first_fraction epochs), stage 1: all of it"
    rounds_default = 1

    def check(self, plan: StagePlan) -> None:
        if plan.rounds != 1:
            raise UserError(f"protocol=warm_start has two stages (rounds=1); got rounds={plan.rounds}")
        if round(plan.first_fraction * plan.n) < 1:
            raise UserError(f"first_fraction={plan.first_fraction} of {plan.n} training examples is no example; "
                            "use a larger first_fraction or train_size")

    def stage(self, s: int, plan: StagePlan) -> Stage:
        if s > 0:
            return Stage()
        order = torch.randperm(plan.n, generator=self.stream(plan))
        return Stage(index=order[: round(plan.first_fraction * plan.n)].sort().values)

    def epochs(self, s: int, plan: StagePlan) -> int:
        return max(1, round(plan.epochs / plan.first_fraction)) if s == 0 else plan.epochs
