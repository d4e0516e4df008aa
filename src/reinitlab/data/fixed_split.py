"""The fixed train/test split of datasets that ship without one (Caltech-101, EuroSAT, your own
single-folder data): per class, a permutation seeded by the dataset and class name, so the split is
the same on every machine, independent of the run's seeds and of which other classes exist."""
from __future__ import annotations

from pathlib import Path

import torch

from ..util.seeding import generator

SPLIT_SEED = 0


def split_class(files: list[Path], key: str, class_name: str, n_train: int | None = None,
                test_fraction: float | None = None) -> tuple[list[Path], list[Path]]:
    """(train, test) of one class's files (sorted first): `n_train` for training, or a
    `test_fraction` (rounded half up) for testing, always leaving one image to train on."""
    files = sorted(files)
    perm = torch.randperm(len(files), generator=generator(SPLIT_SEED, key, class_name)).tolist()
    if n_train is None:
        n_test = min(int(test_fraction * len(files) + 0.5), len(files) - 1)
        n_train = len(files) - n_test
    return [files[i] for i in sorted(perm[:n_train])], [files[i] for i in sorted(perm[n_train:])]
