"""`prepare`: make a dataset ready to load. Files already on disk (in DATA_DIR, or placed there by
hand, archives included) are used as they are; what is missing is downloaded from the official
source and checked against its published checksum, unpacked, and the tensor cache is built."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..util.errors import UserError
from .bundle import DataBundle
from .cache import cache_root
from .download import download, extract
from .registry import DatasetInfo, cache_file, check_dataset, load_info


def fetch(info: DatasetInfo, target: Path, progress: bool = True) -> None:
    """Download (or find already downloaded) and unpack every official file into `target`."""
    for r in info.remotes:
        dest = target / r.filename
        if progress and not dest.is_file():
            print(f"reinitlab: downloading {r.url}", file=sys.stderr)
        download(r.url, dest, md5=r.md5, sha256=r.sha256, progress=progress)
        if r.extract:
            if progress:
                print(f"reinitlab: unpacking {dest}", file=sys.stderr)
            extract(dest, target)
            for inner in r.inner:
                if not (target / inner).is_file():
                    raise UserError(f"{dest}: expected {inner} inside it; the archive layout has changed")
                extract(target / inner, target)


def prepare(name: str, data_dir: str | Path | None = None, resolution: int | None = None, allow_download: bool = True,
            progress: bool = True) -> tuple[DataBundle, Path | None, float]:
    """(bundle, cache file or None, seconds spent loading). Raises UserError."""
    info = check_dataset(name)
    d = Path(data_dir).expanduser() if data_dir else None
    if not info.available(d):
        if not info.remotes or not allow_download:
            info.locate(d)  # raises the error that names the expected files
        target = d if d is not None else cache_root() / info.name
        fetch(info, target, progress)
        if not info.available(d):
            try:
                info.locate(d)
            except UserError as e:
                raise UserError(f"{info.name}: downloaded and unpacked into {target}, but still {e}") from None
    t0 = time.time()
    bundle = load_info(info, d, resolution)
    seconds = time.time() - t0
    res = int(resolution or info.resolution)
    path = cache_file(info, info.locate(d), res) if info.cache else None
    return bundle, path, seconds
