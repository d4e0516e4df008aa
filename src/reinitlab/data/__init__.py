"""Dataset registry. Every dataset loads into a `DataBundle` of uint8 image tensors held in memory."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import UserError, choices


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

    def check(self) -> "DataBundle":
        """Refuse data that would train silently wrong: bad shapes, labels out of range, empty classes."""
        C = self.num_classes
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test),
                            ("val", self.x_val, self.y_val)):
            if x is None:
                continue
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise UserError(f"{self.name}: {split} images must be uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
            if y.dim() != 1 or len(y) != len(x):
                raise UserError(f"{self.name}: {split} has {len(x)} images but {len(y)} labels")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= C):
                raise UserError(f"{self.name}: {split} labels out of range: found {int(y.min())}..{int(y.max())}, "
                                f"expected 0..{C - 1}")
        counts = torch.bincount(self.y_train, minlength=C)
        empty = [self.classes[c] for c in range(C) if counts[c] == 0]
        if empty:
            raise UserError(f"{self.name}: class {empty[0]!r} has no training examples")
        return self


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    num_classes: int
    channels: int
    resolution: int  # default resolution images are resized to
    train_size: int  # official sizes, for `list`
    test_size: int
    load: Callable[[Path | None, int], DataBundle]  # (data_dir or None, resolution) -> bundle
    available: Callable[[Path | None], bool] = lambda d: True


DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


def check_dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; valid: {choices(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, data_dir: str | Path | None = None, resolution: int | None = None) -> DataBundle:
    info = check_dataset(name)
    res = resolution or info.resolution
    bundle = info.load(Path(data_dir).expanduser() if data_dir else None, res)
    return bundle.check()


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 [N,C,H,W] -> uint8 [N,C,r,r], once at load time (antialiased bilinear)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    out = []
    for chunk in x.split(4096):
        y = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                          antialias=True, align_corners=False)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def fingerprint(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))  # the first MiB and the size identify a file well enough, fast
    return h.hexdigest()[:16]


from . import embedded, fashion_mnist  # noqa: E402,F401  (registration)
