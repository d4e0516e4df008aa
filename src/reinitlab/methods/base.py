"""The one interface every reinitialization method implements."""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn as nn

from ..errors import UserError
from ..groups import Groups
from ..options import parse_options
from ..reset import Action, ResetEvent


@dataclass
class NoOptions:
    pass


@dataclass
class ResetContext:
    """What a method may look at when it decides round r's reset event."""

    model: nn.Module
    groups: Groups
    round: int  # r = 1..R
    rounds: int  # R
    init_norms: dict[str, float]  # ||w0_t|| of every parameter, recorded before round 0
    seed: int  # the run's model seed; methods derive their own streams from it
    batches: Callable[[], list[tuple[torch.Tensor, torch.Tensor]]]  # a few training batches, no augmentation
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def params(self) -> dict[str, torch.Tensor]:
        return dict(self.model.named_parameters())


class Method:
    """A method is a schedule: how many epochs each round trains, and the reset event that starts
    each round r >= 1. It never touches weights; `apply_event` does."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    resets: ClassVar[bool] = True  # False for baseline and long: a single round, no events

    def __init__(self, **options):
        self.options = self.parse_options(options)

    @classmethod
    def parse_options(cls, options: dict) -> typing.Any:
        return parse_options(cls.Options, options, owner=f"method {cls.name!r}", prefix=f"{cls.name}.")

    def options_dict(self) -> dict:
        return dataclasses.asdict(self.options)

    def epochs(self, rounds: int, epochs: int) -> list[int]:
        """Epochs of each round, round 0 first."""
        return [epochs] * (rounds + 1)

    def event(self, ctx: ResetContext) -> ResetEvent:
        raise NotImplementedError


@dataclass
class KeepOptions:
    """The kept fraction of each tensor for score-masked methods (dsd, dnr). 0.8 matches ke's default
    split_rate, so the masked methods compare at the same kept fraction."""

    keep: float = 0.8

    def validate(self):
        in_range("keep", self.keep, 0.0, 1.0, lo_open=True, hi_open=True)


def in_range(name: str, value: float, lo: float, hi: float, lo_open=False, hi_open=False) -> None:
    ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise UserError(f"{name}={value!r} is out of range: expected a number in {lb}{lo}, {hi}{rb}")


def reset_groups_from(groups: Groups, k: int) -> dict[str, Action]:
    """Re-draw every parameter of groups k..K whole."""
    return {p: Action(keep=False) for p in groups.params_from(k)}


def top_fraction_mask(score: torch.Tensor, keep: float) -> torch.Tensor:
    """Bool mask of exactly round(keep * n) largest scores (ties broken by position)."""
    n = score.numel()
    k = int(round(keep * n))
    mask = torch.zeros(n, dtype=torch.bool, device=score.device)
    if k > 0:
        idx = torch.topk(score.detach().flatten().float(), k, sorted=False).indices
        mask[idx] = True
    return mask.view_as(score)


def random_mask(shape, keep: float, generator: torch.Generator) -> torch.Tensor:
    """Bool mask with exactly round(keep * n) True entries at uniformly random positions."""
    n = math.prod(shape)
    k = int(round(keep * n))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[:k]] = True
    return mask.view(shape)
