"""CIFAR-10 and CIFAR-100 from their "python version" archives: pickled batches of 32x32 RGB images.

cifar-10-batches-py/   data_batch_1 .. data_batch_5 (official train, 50,000), test_batch (10,000),
                       batches.meta (label_names)
cifar-100-python/      train (50,000), test (10,000), meta (fine_label_names); the 100 fine labels

Each batch is a dict with 'data' (uint8 [N, 3072]: the red, green and blue 32x32 planes, rows
top to bottom) and the labels. The files were written by Python 2, so their strings decode as
latin-1. Unpickling runs code named in the file, so only the few numpy constructors an array needs
are allowed: a crafted file cannot run anything else.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..util.errors import UserError
from .bundle import DataBundle, resize
from .download import Remote
from .registry import DatasetInfo, Source, fingerprint, not_found, register, search_dirs

_SAFE = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
# numpy 2 renamed numpy.core to numpy._core; files carry whichever name their writer had
_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        for alias in ("numpy._core", "numpy.core"):
            if module == alias or module.startswith(alias + "."):
                module = "numpy.core" + module[len(alias):]
        if (module, name) not in _SAFE:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core"):
            module = _CORE + module[len("numpy.core"):]
        return super().find_class(module, name)


def load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    except Exception as e:  # a truncated or foreign pickle can fail in many ways; all mean "not a batch"
        raise UserError(f"{path}: not a readable CIFAR pickle ({e.__class__.__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a CIFAR pickle (holds a {type(obj).__name__}, expected a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(path: Path, d: dict, key: str):
    if key not in d:
        raise UserError(f"{path}: no {key!r} entry (found {', '.join(map(str, d)) or 'nothing'})")
    return d[key]


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = load_pickle(path)
    data, labels = _field(path, d, "data"), _field(path, d, label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path}: 'data' is {what}, expected uint8 [N, 3072]")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"{path}: {label_key!r} is not a list of integers") from None
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _names(path: Path, key: str) -> list[str]:
    names = _field(path, load_pickle(path), key)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def make(name: str, folder: str, train: list[str], test: list[str], meta: str, names_key: str, label_key: str,
         url: str, md5: str, description: str, num_classes: int) -> DatasetInfo:
    wanted = train + test + [meta]

    def locate(data_dir: Path | None) -> Source:
        dirs = search_dirs(name, data_dir, (folder,))
        for d in dirs:
            if all((d / f).is_file() for f in wanted):
                files = [d / f for f in wanted]
                return Source(root=d, files=files, fingerprint=fingerprint(*files))
        raise not_found(name, data_dir, dirs, f"{folder}/ with {', '.join(wanted)}")

    def read(src: Source, resolution: int) -> DataBundle:
        parts = {split: [read_batch(src.root / f, label_key) for f in files] for split, files in
                 (("train", train), ("test", test))}
        x = {s: torch.from_numpy(np.concatenate([p[0] for p in v])) for s, v in parts.items()}
        y = {s: torch.from_numpy(np.concatenate([p[1] for p in v])) for s, v in parts.items()}
        classes = _names(src.root / meta, names_key)
        if len(classes) != num_classes:
            raise UserError(f"{src.root / meta}: {len(classes)} class names, expected {num_classes}")
        return DataBundle(name=name, x_train=resize(x["train"], resolution), y_train=y["train"],
                          x_test=resize(x["test"], resolution), y_test=y["test"], classes=classes,
                          source={"files": [str(f) for f in src.files], "fingerprint": src.fingerprint})

    return register(DatasetInfo(
        name=name, description=description, num_classes=num_classes, channels=3, resolution=32,
        train_size=50000, test_size=10000, locate=locate, read=read,
        layout=f"python pickles: {folder}/{', '.join(train)} (official train, 50,000), {', '.join(test)} "
               f"(official test, 10,000), {meta} ({names_key})",
        remotes=(Remote(url, url.rsplit("/", 1)[1], md5=md5, extract=True),),
    ))


make("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
     "label_names", "labels", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
     "c58f30108f718f92721af3b95e74349a", "CIFAR-10, the python pickle batches (32 px RGB)", 10)
make("cifar100", "cifar-100-python", ["train"], ["test"], "meta", "fine_label_names", "fine_labels",
     "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
     "CIFAR-100, the python pickles, 100 fine labels (32 px RGB)", 100)
