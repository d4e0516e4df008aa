import torch

from .base import Protocol, Stage, StagePlan, register


@register
class Permuted(Protocol):
    """Shifting inputs (permuted MNIST; Dohare et al. 2024, Kumar et al. 2024): stage s trains on the
    whole subset under a fixed random pixel permutation drawn for it (stage 0: none) and is evaluated
    on the test set under the same permutation; `test_acc_mean` is the mean of those accuracies over
    the stages so far."""

    name = "permuted"
    summary = "stage s: the whole subset under its own random pixel permutation (stage 0: none)"

    def stage(self, s: int, plan: StagePlan) -> Stage:
        if s == 0:
            return Stage()
        return Stage(permutation=torch.randperm(plan.pixels, generator=self.stream(plan, s)))
