import torch

from ..util.errors import UserError
from .base import Protocol, Stage, StagePlan, register, split_even


@register
class Classes(Protocol):
    """Class-incremental: the classes, in an order drawn by the data seed, are split into R+1 groups;
    stage s trains on the examples of groups 0..s and is evaluated on the test examples of the
    classes seen so far (`test_acc`) and on the whole test set (`test_all_acc`)."""

    name = "classes"
    summary = "stage s trains on the examples of class groups 0..s (R+1 groups, order fixed by the data seed)"

    def check(self, plan: StagePlan) -> None:
        if plan.rounds + 1 > plan.num_classes:
            raise UserError(f"protocol=classes: {plan.rounds + 1} stages need at least as many classes; the data "
                            f"has {plan.num_classes} (use rounds <= {plan.num_classes - 1})")

    def stage(self, s: int, plan: StagePlan) -> Stage:
        order = torch.randperm(plan.num_classes, generator=self.stream(plan))
        seen = order[: split_even(plan.num_classes, plan.rounds + 1)[s]].sort().values
        index = torch.nonzero(torch.isin(plan.labels, seen)).flatten()
        if len(index) == 0:
            raise UserError(f"protocol=classes: stage {s} (classes {seen.tolist()}) has no training example")
        return Stage(index=index, classes=seen)
