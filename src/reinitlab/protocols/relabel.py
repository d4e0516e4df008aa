import torch

from .base import Protocol, Stage, StagePlan, register


@register
class Relabel(Protocol):
    """Shifting targets (random-label tasks; Kumar et al. 2024): every stage trains on the whole
    subset with labels drawn uniformly at random for it. What a stage measures is the training
    accuracy it reaches (the capacity to fit new labels) and its online accuracy; the test set's
    labels are the true ones, so its accuracy says nothing here."""

    name = "relabel"
    summary = "stage s: the whole subset with labels drawn at random for it (measure: training accuracy reached)"

    def stage(self, s: int, plan: StagePlan) -> Stage:
        return Stage(labels=torch.randint(plan.num_classes, (plan.n,), generator=self.stream(plan, s)))
