"""Where data lives on disk, and the tensor cache.

cache_root()            ~/.cache/reinitlab, or $REINITLAB_DATA
cache_root()/<name>/    downloaded official files of a benchmark (`reinitlab data prepare`)
cache_root()/tensors/   one .pt file per (dataset, source files, resolution): images already decoded
                        and resized, so every load after the first skips the decoding

A cache file is written atomically (temp file + rename), so a killed build leaves nothing behind;
one that cannot be read is rebuilt.
"""
from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import torch

from ..util.files import atomic_write_bytes
from .bundle import DataBundle

# Bump when a reader's output changes for the same files (e.g. another resize), so old caches are ignored.
FORMAT_VERSION = 1


def cache_root() -> Path:
    return Path(os.environ.get("REINITLAB_DATA") or Path.home() / ".cache" / "reinitlab").expanduser()


def tensor_path(name: str, resolution: int, key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[-60:]
    return cache_root() / "tensors" / f"{slug}-{resolution}px-{key}.pt"


def read(path: Path) -> DataBundle | None:
    if not path.is_file():
        return None
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return DataBundle(name=d["name"], x_train=d["x_train"], y_train=d["y_train"], x_test=d["x_test"],
                          y_test=d["y_test"], classes=list(d["classes"]), x_val=d.get("x_val"),
                          y_val=d.get("y_val"), source=dict(d["source"]))
    except Exception as e:  # a cache is disposable: anything unreadable is rebuilt from the source files
        print(f"reinitlab: ignoring unreadable cache {path} ({e.__class__.__name__}); rebuilding it",
              file=sys.stderr)
        return None


def write(path: Path, bundle: DataBundle) -> bool:
    """Save the bundle; False (with a note) where the cache folder is not writable: the data still loads."""
    d = {"name": bundle.name, "x_train": bundle.x_train, "y_train": bundle.y_train, "x_test": bundle.x_test,
         "y_test": bundle.y_test, "classes": list(bundle.classes), "source": bundle.source}
    if bundle.x_val is not None:
        d["x_val"], d["y_val"] = bundle.x_val, bundle.y_val
    buf = io.BytesIO()
    torch.save(d, buf)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        print(f"reinitlab: cannot write the data cache {path} ({e.strerror or e}); set REINITLAB_DATA to a "
              "writable folder to make later loads fast", file=sys.stderr)
        return False
    return True
