"""The protocol interface: the stages of a run, as positions into its training subset, labels, a
pixel permutation and the classes trained so far."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..util.registry import Registry
from ..util.seeding import generator


@dataclass(frozen=True)
class Stage:
    """What one stage trains on and is evaluated on. None everywhere is the whole subset as it is."""

    index: torch.Tensor | None = None  # positions into the run's training subset, in a fixed order
    labels: torch.Tensor | None = None  # the labels trained on (relabel), for every position of `index`
    permutation: torch.Tensor | None = None  # pixel order of every image this stage sees (train, val, test)
    classes: torch.Tensor | None = None  # classes trained so far: the test set is also restricted to them


@dataclass(frozen=True)
class StagePlan:
    """The shape of the data plan: what a stage needs before anything is built (the schedule, cost
    estimates, checks)."""

    n: int  # examples in the training subset
    labels: torch.Tensor  # their labels as trained (noisy where label_noise > 0)
    num_classes: int
    pixels: int  # height x width of an image
    data_seed: int
    rounds: int  # R: stages after stage 0
    epochs: int  # E: epochs of a stage
    first_fraction: float


class Protocol:
    """A schedule of stages. `staged` is False only for `rounds`, whose runs and records stay exactly
    as they were before protocols existed."""

    name: ClassVar[str]
    summary: ClassVar[str]
    staged: ClassVar[bool] = True
    rounds_default: ClassVar[int | None] = None  # the rounds a protocol implies (warm_start: 1)

    def check(self, plan: StagePlan) -> None:
        """Refuse, in one line, a plan this protocol cannot train."""

    def stage(self, s: int, plan: StagePlan) -> Stage:
        raise NotImplementedError

    def epochs(self, s: int, plan: StagePlan) -> int:
        """Epochs of stage s (the cap when `patience` ends stages once fitted)."""
        return plan.epochs

    def stream(self, plan: StagePlan, *parts) -> torch.Generator:
        """This protocol's random numbers: from the data seed alone, so every method of one data seed
        sees the same stages."""
        return generator(plan.data_seed, "protocol", self.name, *parts)


PROTOCOLS: Registry[type[Protocol]] = Registry("protocol", packages=("reinitlab.protocols",), first=(
    "rounds", "warm_start", "chunks", "classes", "permuted", "relabel"))


def register(cls: type[Protocol]) -> type[Protocol]:
    return PROTOCOLS.add(cls.name, cls)


def split_even(n: int, parts: int) -> list[int]:
    """Cumulative ends of `parts` nearly equal consecutive pieces of n (the first n % parts pieces one
    longer), as numpy's array_split cuts."""
    base, extra = divmod(n, parts)
    ends, end = [], 0
    for i in range(parts):
        end += base + (1 if i < extra else 0)
        ends.append(end)
    return ends


def permute_pixels(x: torch.Tensor, permutation: torch.Tensor | None,
                   memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Images (N, C, H, W) with their H*W pixels reordered by `permutation` (the same for every
    channel), in `memory_format`."""
    if permutation is None:
        return x
    n, c, h, w = x.shape
    out = x.reshape(n, c, h * w)[:, :, permutation.to(x.device)].reshape(n, c, h, w)
    return out.contiguous(memory_format=memory_format)
