"""STL-10, the binary format, labelled part only: stl10_binary/train_X.bin, train_y.bin (official
train, 5,000), test_X.bin, test_y.bin (official test, 8,000), class_names.txt.

Images are raw uint8, 3 x 96 x 96 each, every colour plane stored column by column (MATLAB order);
labels are one byte each, 1..10. The unlabelled 100,000 images (unlabeled_X.bin) are not read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..util.errors import UserError
from .bundle import DataBundle, resize
from .download import Remote
from .registry import DatasetInfo, Source, fingerprint, not_found, register, search_dirs

NAME = "stl10"
SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]
CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def read_split(x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = np.fromfile(x_path, dtype=np.uint8), np.fromfile(y_path, dtype=np.uint8)
    except OSError as e:
        raise UserError(f"{x_path.parent}: cannot read ({e})") from None
    if len(x) % IMAGE_BYTES:
        raise UserError(f"{x_path}: wrong length: {len(x)} bytes is not a whole number of 3x{SIDE}x{SIDE} images "
                        f"({IMAGE_BYTES} bytes each); truncated?")
    n = len(x) // IMAGE_BYTES
    if n != len(y):
        raise UserError(f"{x_path} holds {n} images but {y_path} holds {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise UserError(f"{y_path}: labels out of range: found {y.min()}..{y.max()}, expected 1..10")
    # column-major planes: [N, C, W, H] in memory -> [N, C, H, W]
    return x.reshape(n, 3, SIDE, SIDE).transpose(0, 1, 3, 2), y.astype(np.int64) - 1


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir, ("stl10_binary",))
    for d in dirs:
        if all((d / f).is_file() for f in FILES):
            files = [d / f for f in FILES] + ([d / "class_names.txt"] if (d / "class_names.txt").is_file() else [])
            return Source(root=d, files=files, fingerprint=fingerprint(*files))
    raise not_found(NAME, data_dir, dirs, "stl10_binary/ with " + ", ".join(FILES))


def read(src: Source, resolution: int) -> DataBundle:
    d = src.root
    xtr, ytr = read_split(d / "train_X.bin", d / "train_y.bin")
    xte, yte = read_split(d / "test_X.bin", d / "test_y.bin")
    classes = CLASSES
    names = d / "class_names.txt"
    if names.is_file():
        lines = [ln.strip() for ln in names.read_text(errors="replace").splitlines() if ln.strip()]
        if len(lines) != 10:
            raise UserError(f"{names}: {len(lines)} class names, expected 10")
        classes = lines
    return DataBundle(
        name=NAME, x_train=resize(torch.from_numpy(np.ascontiguousarray(xtr)), resolution),
        y_train=torch.from_numpy(ytr), x_test=resize(torch.from_numpy(np.ascontiguousarray(xte)), resolution),
        y_test=torch.from_numpy(yte), classes=classes,
        source={"files": [str(f) for f in src.files], "fingerprint": src.fingerprint})


register(DatasetInfo(
    name=NAME, description="STL-10 labelled part, the binary files (96 px RGB, default 64 px)",
    num_classes=10, channels=3, resolution=64, train_size=5000, test_size=8000, locate=locate, read=read,
    layout="binary: stl10_binary/train_X.bin, train_y.bin (official train), test_X.bin, test_y.bin "
           "(official test); column-major 3x96x96, labels 1..10",
    remotes=(Remote("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
                    md5="91f7769df0f17e558f3565bffb0c7dfb", extract=True),),
))
