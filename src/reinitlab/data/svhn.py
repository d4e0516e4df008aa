"""SVHN, the cropped-digits format: train_32x32.mat (official train, 73,257) and test_32x32.mat
(official test, 26,032), MATLAB files with 'X' (uint8 [32, 32, 3, N]) and 'y' ([N, 1], 1..10,
where 10 stands for the digit 0). extra_32x32.mat is not used."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..util.errors import UserError
from .bundle import DataBundle, resize
from .download import Remote
from .registry import DatasetInfo, Source, fingerprint, not_found, register, search_dirs

NAME = "svhn"
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
URL = "http://ufldl.stanford.edu/housenumbers/"
MD5 = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat
    try:
        m = loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... for foreign or cut files
        raise UserError(f"{path}: not a readable MATLAB file ({e.__class__.__name__}: {e})") from None
    for key in ("X", "y"):
        if key not in m:
            raise UserError(f"{path}: no {key!r} variable; expected SVHN's cropped-digits format")
    x, y = m["X"], np.asarray(m["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise UserError(f"{path}: 'X' is {x.dtype} {x.shape}, expected uint8 [32, 32, 3, N]")
    if x.shape[3] != len(y):
        raise UserError(f"{path}: {x.shape[3]} images but {len(y)} labels")
    if len(y) and (y.min() < 1 or y.max() > 10 or not np.all(y == np.round(y))):
        raise UserError(f"{path}: labels out of range: found {y.min()}..{y.max()}, expected 1..10 (10 = digit 0)")
    return x.transpose(3, 2, 0, 1), y.astype(np.int64) % 10


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir)
    for d in dirs:
        if all((d / f).is_file() for f in FILES.values()):
            files = [d / f for f in FILES.values()]
            return Source(root=d, files=files, fingerprint=fingerprint(*files))
    raise not_found(NAME, data_dir, dirs, " and ".join(FILES.values()))


def read(src: Source, resolution: int) -> DataBundle:
    (xtr, ytr), (xte, yte) = (read_mat(src.root / FILES[s]) for s in ("train", "test"))
    return DataBundle(
        name=NAME, x_train=resize(torch.from_numpy(np.ascontiguousarray(xtr)), resolution),
        y_train=torch.from_numpy(ytr), x_test=resize(torch.from_numpy(np.ascontiguousarray(xte)), resolution),
        y_test=torch.from_numpy(yte), classes=[str(d) for d in range(10)],
        source={"files": [str(f) for f in src.files], "fingerprint": src.fingerprint})


register(DatasetInfo(
    name=NAME, description="SVHN cropped digits, train_32x32.mat / test_32x32.mat (32 px RGB)",
    num_classes=10, channels=3, resolution=32, train_size=73257, test_size=26032, locate=locate, read=read,
    layout="MATLAB: train_32x32.mat (official train), test_32x32.mat (official test); label 10 = digit 0",
    remotes=tuple(Remote(URL + f, f, md5=MD5[f]) for f in FILES.values()),
))
