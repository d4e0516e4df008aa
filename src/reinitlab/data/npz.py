"""Your own arrays: `npz:PATH`, a numpy .npz with x_train, y_train, x_test, y_test (and optionally
x_val, y_val as the validation split, and `classes`, an array of class names).

Images are uint8, laid out NHW (grey), NHWC or NCHW with 1 or 3 channels; labels are integers
0..C-1, where C is len(classes) or, without names, the largest label + 1. The default resolution
is the images' own (the shorter side, if they are not square). Pickled objects are never loaded.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..util.errors import UserError
from .bundle import DataBundle, resize
from .registry import DatasetInfo, Source, register_prefix

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array, read from the .npy headers without loading the data."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if not member.endswith(".npy"):
                    continue
                with z.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                out[member[:-4]] = (shape, dtype)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e.__class__.__name__}: {e})") from None
    return out


def channels_first(name: str, shape: tuple[int, ...], path: Path) -> str:
    """'NHW', 'NHWC' or 'NCHW' for an image array of this shape."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) == 4:
        first, last = shape[1] in (1, 3), shape[3] in (1, 3)
        if last and not first:
            return "NHWC"
        if first and not last:
            return "NCHW"
        if first and last:
            raise UserError(f"{path}: {name} has shape {shape}: ambiguous between NCHW and NHWC")
    raise UserError(f"{path}: {name} has shape {shape}; expected images NHW, NHWC or NCHW with 1 or 3 channels")


def make_info(spec: str) -> DatasetInfo:
    path = Path(spec).expanduser()
    name = f"npz:{spec}"
    if not path.is_file():
        raise UserError(f"{name}: no such file {path}")
    h = headers(path)
    missing = [k for k in REQUIRED if k not in h]
    if missing:
        raise UserError(f"{path}: no array {missing[0]!r}; expected {', '.join(REQUIRED)} (found {', '.join(h) or 'none'})")
    shape = h["x_train"][0]
    kind = channels_first("x_train", shape, path)
    hw = shape[1:3] if kind in ("NHW", "NHWC") else shape[2:4]
    chans = 1 if kind == "NHW" else (shape[3] if kind == "NHWC" else shape[1])

    if "classes" in h:
        num_classes = int(np.prod(h["classes"][0]))
    else:  # labels are small: read them now so `data list`/`info` and studies know the class count
        try:
            with np.load(path, allow_pickle=False) as z:
                tops = [int(z[k].max()) for k in ("y_train", "y_val", "y_test") if k in z.files and z[k].size]
        except (ValueError, TypeError, OSError, zipfile.BadZipFile) as e:
            raise UserError(f"{path}: labels unreadable ({e.__class__.__name__}: {e})") from None
        num_classes = max(tops) + 1 if tops else 0

    def locate(_data_dir: Path | None) -> Source:
        if not path.is_file():
            raise UserError(f"{name}: no such file {path}")
        digest = hashlib.sha256()
        with open(path, "rb") as f:  # the whole file: arrays of one shape keep the size when edited
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return Source(root=path.parent, files=[path], fingerprint=digest.hexdigest()[:16])

    def read(src: Source, resolution: int) -> DataBundle:
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except ValueError as e:
            if "pickle" in str(e):
                raise UserError(f"{path}: holds pickled objects, which are not loaded; store class names as a "
                                "string array, e.g. np.array(['cat', 'dog'])") from None
            raise UserError(f"{path}: not a readable .npz file ({e})") from None
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise UserError(f"{path}: not a readable .npz file ({e.__class__.__name__}: {e})") from None
        splits = {}
        for split in ("train", "val", "test"):
            if f"x_{split}" not in arrays and f"y_{split}" not in arrays:
                continue
            pair = (f"x_{split}", f"y_{split}")
            if not all(k in arrays for k in pair):
                have, lack = pair if pair[0] in arrays else pair[::-1]
                raise UserError(f"{path}: has {have} but no {lack}")
            splits[split] = (_images(path, f"x_{split}", arrays[f"x_{split}"], resolution),
                             _labels(path, f"y_{split}", arrays[f"y_{split}"]))
        if "classes" in arrays:
            classes = [str(c) for c in np.asarray(arrays["classes"]).reshape(-1)]
        else:
            top = max(int(y.max()) for _, y in splits.values() if len(y))
            classes = [str(c) for c in range(top + 1)]
        val = splits.get("val")
        return DataBundle(name=name, x_train=splits["train"][0], y_train=splits["train"][1],
                          x_test=splits["test"][0], y_test=splits["test"][1], classes=classes,
                          x_val=val[0] if val else None, y_val=val[1] if val else None,
                          source={"files": [str(path)], "fingerprint": src.fingerprint})

    return DatasetInfo(
        name=name, description=f"your arrays in {path}", num_classes=num_classes, channels=int(chans),
        resolution=int(min(hw)), train_size=int(shape[0]), test_size=_count(h, "x_test"),
        val_size=_count(h, "x_val"), locate=locate, read=read,
        layout="npz arrays x_train, y_train (train), x_test, y_test (test)" + (", x_val, y_val (validation)" if "x_val" in h else ""),
    )


def _count(h: dict, key: str) -> int:
    shape = h.get(key, ((),))[0]
    return int(shape[0]) if shape else 0


def _images(path: Path, key: str, x: np.ndarray, resolution: int) -> torch.Tensor:
    if x.dtype != np.uint8:
        raise UserError(f"{path}: {key} is {x.dtype}; expected uint8 images (0..255)")
    kind = channels_first(key, x.shape, path)
    if kind == "NHW":
        x = x[:, None]
    elif kind == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    return resize(torch.from_numpy(np.ascontiguousarray(x)), resolution)


def _labels(path: Path, key: str, y: np.ndarray) -> torch.Tensor:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        raise UserError(f"{path}: {key} is {y.dtype} {y.shape}; expected integer class labels [N]")
    if len(y) and y.min() < 0:
        raise UserError(f"{path}: {key} labels out of range: found {y.min()}, expected 0 or more")
    return torch.from_numpy(y.astype(np.int64))


register_prefix("npz", make_info)
