"""The dataset registry and the one load path every dataset goes through.

A dataset is two functions: `locate(data_dir)` finds its files (cheap: paths, sizes, a fingerprint)
and `read(source, resolution)` decodes them into a `DataBundle`. `load_dataset` keys the tensor
cache by what `locate` found, so only the first load of a (dataset, files, resolution) decodes.
Names with a prefix (`folder:PATH`, `npz:PATH`) build their `DatasetInfo` on the fly.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..util.errors import UserError
from ..util.registry import Registry
from . import cache
from .bundle import DataBundle
from .download import Remote


@dataclass
class Source:
    root: Path  # the folder the files were found in
    files: list[Path]  # every file `read` will open; their sizes and mtimes key the cache
    fingerprint: str  # identity of the content, stored in each run's split.json
    paths: dict = field(default_factory=dict)  # reader-specific: named files and folders found


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    num_classes: int
    channels: int
    resolution: int  # default resolution images are resized to
    train_size: int  # official sizes, for `data list`
    test_size: int
    locate: Callable[[Path | None], Source]
    read: Callable[[Source, int], DataBundle]
    val_size: int = 0  # official validation split, where there is one
    layout: str = ""  # the files read and the split used, for `data info` and the docs
    remotes: tuple[Remote, ...] = ()  # official downloads, for `data prepare`
    cache: bool = True  # False for data that is already in memory-ready form (the embedded set)

    def available(self, data_dir: Path | None = None) -> bool:
        try:
            self.locate(data_dir)
        except UserError:
            return False
        return True

    def load(self, data_dir: Path | None, resolution: int | None = None) -> DataBundle:
        return load_info(self, data_dir, resolution)


# each reader module registers its datasets; `data list` shows them in this order, then any other
_READERS = ("mnist", "fashion_mnist", "kmnist", "cifar", "svhn", "stl10", "flowers102", "dtd", "oxford_pets",
            "caltech101", "eurosat", "embedded", "digits", "folder", "npz")
# plugins register datasets (and prefixes) from the modules they name in the group "reinitlab.datasets"
DATASETS: Registry[DatasetInfo] = Registry("dataset", packages=("reinitlab.data",), first=_READERS,
                                           entry_points="reinitlab.datasets")
PREFIXES: Registry[Callable[[str], DatasetInfo]] = Registry("dataset prefix", packages=("reinitlab.data",),
                                                            first=_READERS, entry_points="reinitlab.datasets")
# PREFIXES: "folder" -> (PATH part -> info)


def register(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.add(info.name, info)


def register_prefix(prefix: str, make: Callable[[str], DatasetInfo]) -> None:
    PREFIXES.add(prefix, make)


def check_dataset(name: str) -> DatasetInfo:
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PREFIXES:
        if not rest:
            raise UserError(f"dataset {name!r}: give a path after '{prefix}:', e.g. {prefix}:/data/my-images")
        return PREFIXES[prefix](rest)
    if name not in DATASETS:
        own = " or ".join(f"{p}:PATH" for p in PREFIXES)
        raise UserError(DATASETS.unknown(name) + (f", or your own data as {own}" if own else ""))
    return DATASETS[name]


def load_dataset(name: str, data_dir: str | Path | None = None, resolution: int | None = None) -> DataBundle:
    return load_info(check_dataset(name), data_dir, resolution)


def load_info(info: DatasetInfo, data_dir: str | Path | None, resolution: int | None) -> DataBundle:
    res = int(resolution or info.resolution)
    if not 4 <= res <= 512:
        raise UserError(f"resolution={res} is out of range: expected an integer in [4, 512]")
    src = info.locate(Path(data_dir).expanduser() if data_dir else None)
    if not info.cache:
        return info.read(src, res).check()
    path = cache_file(info, src, res)
    bundle = cache.read(path)
    if bundle is None:
        if len(src.files) > 100 or sum(_size(f) for f in src.files) > 20e6:
            print(f"reinitlab: decoding {info.name} at {res} px from {src.root} (first load; cached in "
                  f"{path.parent})", file=sys.stderr)
        bundle = info.read(src, res).check()
        cache.write(path, bundle)
    return bundle.check()


def cache_file(info: DatasetInfo, src: Source, resolution: int) -> Path:
    stats = []
    for f in src.files:
        st = f.stat()
        stats.append((f.name, st.st_size, st.st_mtime_ns))
    body = json.dumps([cache.FORMAT_VERSION, info.name, resolution, src.fingerprint, stats])
    return cache.tensor_path(info.name, resolution, hashlib.sha256(body.encode()).hexdigest()[:16])


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


# ---- helpers for readers ----------------------------------------------------------------------
def fingerprint(*paths: Path) -> str:
    """Names, sizes and the first MiB of a few large files: identifies a file well, fast."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def listing_fingerprint(root: Path, files: Iterable[Path], small_files: Iterable[Path] = ()) -> str:
    """Relative names and sizes of many image files, plus the full content of small split/label files."""
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}\n".encode())
    for p in small_files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def search_dirs(name: str, data_dir: Path | None, subdirs: Iterable[str] = (), extra: Iterable[Path] = ()) -> list[Path]:
    """Where to look: DATA_DIR, DATA_DIR/<name> (or the download folder and any system folder), each
    also with the dataset's usual archive sub-folder (cifar-10-batches-py, stl10_binary, ...)."""
    bases = [data_dir, data_dir / name] if data_dir is not None else [cache.cache_root() / name, *extra]
    out: list[Path] = []
    for b in bases:
        for d in [b, *(b / s for s in subdirs)]:
            if d not in out:
                out.append(d)
    return out


def not_found(name: str, data_dir: Path | None, searched: list[Path], expected: str) -> UserError:
    where = ", ".join(str(d) for d in searched)
    cmd = f"reinitlab data prepare {name}" + (f" --data-dir {data_dir}" if data_dir is not None else "")
    return UserError(f"{name}: files not found: expected {expected} in one of {where}; put them there or run `{cmd}`")
