"""Architecture registry. Every model has top-level children stem, block1..blockK, head (declared in
`group_spec`), a `width` multiplier, and works at 28-64 px with 1 or 3 input channels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from ..util.registry import Registry


@dataclass(frozen=True)
class ArchInfo:
    name: str
    description: str
    build: Callable[..., nn.Module]


ARCHS: Registry[ArchInfo] = Registry("arch", packages=("reinitlab.models",), entry_points="reinitlab.archs")


def register(name: str, description: str):
    def deco(fn):
        ARCHS.add(name, ArchInfo(name, description, fn))
        return fn
    return deco


def check_arch(name: str) -> ArchInfo:
    return ARCHS[name]


def build_model(name: str, in_channels: int, num_classes: int, width: float = 1.0,
                resolution: int = 32) -> nn.Module:
    model = check_arch(name).build(in_channels=in_channels, num_classes=num_classes, width=width,
                                   resolution=resolution)
    model.arch = name
    return model

