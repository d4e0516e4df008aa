"""Fashion-MNIST from the four standard IDX files."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError
from . import DataBundle, DatasetInfo, fingerprint, register, resize
from .idx import find_file, read_idx

CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot"]
FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def cache_root() -> Path:
    return Path(os.environ.get("REINITLAB_DATA", Path.home() / ".cache" / "reinitlab"))


def default_dirs(name: str) -> list[Path]:
    return [cache_root() / name, SYSTEM_DIR]


def read_idx_set(name: str, directory: Path | None, files: dict[str, str], classes: list[str],
                 resolution: int, search: list[Path]) -> DataBundle:
    dirs = [directory] if directory else search
    for d in dirs:
        found = {k: find_file(d, stem) for k, stem in files.items()}
        if all(found.values()):
            break
    else:
        where = " or ".join(str(d) for d in dirs)
        raise UserError(f"{name}: IDX files not found in {where}: expected {', '.join(files.values())} "
                        f"(optionally .gz); put them there or run `reinitlab data prepare {name}`")
    arrays = {k: read_idx(p) for k, p in found.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UserError(f"{name}: {found[f'x_{split}']} holds {x.shape}, {found[f'y_{split}']} holds "
                            f"{y.shape}: expected [N, H, W] images and N labels")
    t = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    return DataBundle(
        name=name,
        x_train=resize(t["x_train"].unsqueeze(1), resolution), y_train=t["y_train"].long(),
        x_test=resize(t["x_test"].unsqueeze(1), resolution), y_test=t["y_test"].long(),
        classes=classes,
        source={"files": [str(p) for p in found.values()], "fingerprint": fingerprint(*found.values())},
    )


def _available(directory: Path | None) -> bool:
    dirs = [directory] if directory else default_dirs("fashion-mnist")
    return any(all(find_file(d, s) for s in FILES.values()) for d in dirs)


register(DatasetInfo(
    name="fashion-mnist", description="Fashion-MNIST, the four IDX files (Zalando; 28 px grey)",
    num_classes=10, channels=1, resolution=28, train_size=60000, test_size=10000,
    load=lambda d, r: read_idx_set("fashion-mnist", d, FILES, CLASSES, r, default_dirs("fashion-mnist")),
    available=_available,
))
