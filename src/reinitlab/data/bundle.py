"""`DataBundle`: one dataset in memory as uint8 image tensors, and the resize done once at load time."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..util.errors import UserError


@dataclass
class DataBundle:
    name: str
    x_train: torch.Tensor  # uint8 [N, C, H, W]
    y_train: torch.Tensor  # int64 [N]
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    x_val: torch.Tensor | None = None  # an official validation split, where the dataset has one
    y_val: torch.Tensor | None = None
    source: dict = field(default_factory=dict)  # files read and their fingerprint

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.x_train.shape[-1])

    def splits(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        out = [("train", self.x_train, self.y_train)]
        if self.x_val is not None:
            out.append(("val", self.x_val, self.y_val))
        out.append(("test", self.x_test, self.y_test))
        return out

    def check(self) -> "DataBundle":
        """Refuse data that would train silently wrong: bad shapes, labels out of range, empty classes."""
        C = self.num_classes
        if C < 2:
            raise UserError(f"{self.name}: {C} class{'es' if C != 1 else ''}; classification needs at least 2")
        if (self.x_val is None) != (self.y_val is None):
            raise UserError(f"{self.name}: validation images and labels must come together")
        shape = tuple(self.x_train.shape[1:])
        for split, x, y in self.splits():
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise UserError(f"{self.name}: {split} images must be uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
            if tuple(x.shape[1:]) != shape:
                raise UserError(f"{self.name}: {split} images are {tuple(x.shape[1:])}, train images {shape}")
            if y.dim() != 1 or len(y) != len(x):
                raise UserError(f"{self.name}: {split} has {len(x)} images but {len(y)} labels")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= C):
                raise UserError(f"{self.name}: {split} labels out of range: found {int(y.min())}..{int(y.max())}, "
                                f"expected 0..{C - 1}")
        if len(self.y_test) == 0:
            raise UserError(f"{self.name}: the test split is empty")
        counts = torch.bincount(self.y_train, minlength=C)
        empty = [self.classes[c] for c in range(C) if counts[c] == 0]
        if empty:
            raise UserError(f"{self.name}: class {empty[0]!r} has no training examples")
        return self


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 [N,C,H,W] -> uint8 [N,C,r,r], once at load time (antialiased bilinear; a non-square
    image is stretched to the square)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    out = []
    for chunk in x.split(4096):
        y = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                          antialias=True, align_corners=False)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out) if out else x.new_zeros((0, x.shape[1], resolution, resolution))
