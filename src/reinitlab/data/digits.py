"""`digits`: the 1,797 handwritten digits (8x8 px, 16 grey levels) bundled with scikit-learn, a
copy of the UCI "Optical Recognition of Handwritten Digits" test set. A second real dataset that
needs no download, so a study can ask whether a finding holds on more than one dataset on any
machine. It has no official train/test split; this one is fixed and needs no seed: the last
TEST_PER_CLASS images of each class, in the file's order, are the test set (500), the rest train
(1,297). Images are upsampled to 16 px by default (8 px leaves the cnn's three pools no room)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .bundle import DataBundle, resize
from .registry import DatasetInfo, Source, register

NAME = "digits"
TEST_PER_CLASS = 50
CLASSES = [str(d) for d in range(10)]


def locate(_data_dir) -> Source:
    import sklearn.datasets
    root = Path(sklearn.datasets.__file__).parent / "data"
    return Source(root=root, files=[root / "digits.csv.gz"], fingerprint="")


def split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, test): per class its last TEST_PER_CLASS images in file order are test."""
    test = np.concatenate([np.flatnonzero(y == c)[-TEST_PER_CLASS:] for c in range(len(CLASSES))])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def read(_src: Source, resolution: int) -> DataBundle:
    from sklearn.datasets import load_digits
    d = load_digits()
    # 0..16 grey levels -> 0..255, exactly (16 * 255 / 16 = 255)
    x = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    train, test = (torch.from_numpy(i) for i in split(d.target))
    return DataBundle(
        name=NAME,
        x_train=resize(x[train], resolution), y_train=y[train],
        x_test=resize(x[test], resolution), y_test=y[test],
        classes=CLASSES,
        source={"files": ["sklearn/datasets/data/digits.csv.gz"],
                "fingerprint": "sklearn-digits-" + hashlib.sha256(d.images.tobytes() + d.target.tobytes()).hexdigest()[:16]},
    )


register(DatasetInfo(
    name=NAME,
    description="scikit-learn's bundled handwritten digits, 1,797 images (8 px grey, default 16 px), offline",
    num_classes=10, channels=1, resolution=16, train_size=1297, test_size=500, locate=locate, read=read,
    layout="scikit-learn's datasets/data/digits.csv.gz (load_digits); test: the last 50 images of each "
           "class in file order, train: the other 1,297",
    cache=False,  # decoded from a 0.1 MB file in well under a second
))
