"""The IDX format of MNIST, Fashion-MNIST and KMNIST (plain or gzipped), and the one reader of the
three: four files, `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`, with their official 60,000 / 10,000 train/test split."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ..util.errors import UserError
from .bundle import DataBundle, resize
from .download import Remote
from .registry import DatasetInfo, Source, fingerprint, not_found, register, search_dirs

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def read_idx(path: Path) -> np.ndarray:
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(f"{path}: wrong length: the header promises shape {shape} ({expected} bytes), "
                        f"the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def locate_idx(name: str, data_dir: Path | None, extra: tuple[Path, ...] = ()) -> Source:
    dirs = search_dirs(name, data_dir, ("raw",), extra)
    for d in dirs:
        found = {k: find_file(d, stem) for k, stem in FILES.items()}
        if all(found.values()):
            files = list(found.values())
            return Source(root=d, files=files, fingerprint=fingerprint(*files), paths=found)
    raise not_found(name, data_dir, dirs, ", ".join(FILES.values()) + " (each optionally .gz)")


def read_idx_set(name: str, classes: list[str], src: Source, resolution: int) -> DataBundle:
    found = src.paths
    arrays = {k: read_idx(p) for k, p in found.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UserError(f"{name}: {found[f'x_{split}']} holds {x.shape}, {found[f'y_{split}']} holds "
                            f"{y.shape}: expected [N, H, W] images and N labels")
        if x.dtype != np.uint8:
            raise UserError(f"{found[f'x_{split}']}: images must be unsigned bytes (IDX type 0x08), got {x.dtype}")
    t = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    return DataBundle(
        name=name,
        x_train=resize(t["x_train"].unsqueeze(1), resolution), y_train=t["y_train"].long(),
        x_test=resize(t["x_test"].unsqueeze(1), resolution), y_test=t["y_test"].long(),
        classes=classes,
        source={"files": [str(p) for p in found.values()], "fingerprint": src.fingerprint},
    )


def register_idx(name: str, description: str, classes: list[str], mirror: str, md5: dict[str, str],
                 extra: tuple[Path, ...] = ()) -> DatasetInfo:
    return register(DatasetInfo(
        name=name, description=description, num_classes=len(classes), channels=1, resolution=28,
        train_size=60000, test_size=10000,
        locate=lambda d: locate_idx(name, d, extra),
        read=lambda src, r: read_idx_set(name, classes, src, r),
        layout="IDX: train-images-idx3-ubyte, train-labels-idx1-ubyte (official train, 60,000), "
               "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (official test, 10,000); plain or .gz",
        remotes=tuple(Remote(mirror + stem + ".gz", stem + ".gz", md5=md5[stem]) for stem in FILES.values()),
    ))
