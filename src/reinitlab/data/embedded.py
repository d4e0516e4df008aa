"""`fashion-mnist-small`: 500 training images per class and the full 10,000-image test set of
Fashion-MNIST, shipped inside the package (built by scripts/make_embedded.py from Debian's
dataset-fashion-mnist IDX files), so the default dataset works offline on any machine."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .bundle import DataBundle, resize
from .fashion_mnist import CLASSES
from .registry import DatasetInfo, Source, register

NAME = "fashion-mnist-small"
FILE = "fashion-mnist-small.npz"


def locate(_data_dir) -> Source:
    return Source(root=Path(__file__).parent / "files", files=[], fingerprint="")


def read(_src: Source, resolution: int) -> DataBundle:
    with resources.files(__package__).joinpath("files", FILE).open("rb") as f:
        z = np.load(f)
        arrays = {k: z[k] for k in z.files}
    return DataBundle(
        name=NAME,
        x_train=resize(torch.from_numpy(arrays["x_train"]).unsqueeze(1), resolution),
        y_train=torch.from_numpy(arrays["y_train"]).long(),
        x_test=resize(torch.from_numpy(arrays["x_test"]).unsqueeze(1), resolution),
        y_test=torch.from_numpy(arrays["y_test"]).long(),
        classes=CLASSES,
        source={"files": [f"reinitlab/data/files/{FILE}"], "fingerprint": str(arrays["fingerprint"])},
    )


register(DatasetInfo(
    name=NAME,
    description="embedded Fashion-MNIST subset: 500 train images per class + the full test set (28 px grey)",
    num_classes=10, channels=1, resolution=28, train_size=5000, test_size=10000, locate=locate, read=read,
    layout=f"shipped in the package: reinitlab/data/files/{FILE} (a fixed 500 per class of the official "
           "train set; the official test set)",
    cache=False,  # 4 MB of ready arrays: reading them is as fast as reading a cache
))
