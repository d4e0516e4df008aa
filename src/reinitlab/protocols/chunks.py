import torch

from ..util.errors import UserError
from .base import Protocol, Stage, StagePlan, register, split_even


@register
class Chunks(Protocol):
    """Growing data: the subset, in an order drawn by the data seed, is cut into R+1 equal chunks;
    stage s trains on chunks 0..s (the FIRE harness's `continual`, the DASH code's cumulative chunks)."""

    name = "chunks"
    summary = "stage s trains on the union of chunks 0..s of R+1 equal, disjoint chunks of the subset"

    def check(self, plan: StagePlan) -> None:
        if plan.rounds + 1 > plan.n:
            raise UserError(f"protocol=chunks: {plan.rounds + 1} chunks of {plan.n} training examples leave a chunk "
                            "empty; use fewer rounds or a larger train_size")

    def stage(self, s: int, plan: StagePlan) -> Stage:
        order = torch.randperm(plan.n, generator=self.stream(plan))
        end = split_even(plan.n, plan.rounds + 1)[s]
        return Stage(index=order[:end].sort().values)
