"""Oxford 102 Flowers: jpg/image_00001.jpg .. image_08189.jpg, imagelabels.mat ('labels', 1..102,
one per image) and setid.mat (image ids 1..8189 of the official splits: 'trnid' train, 1,020;
'valid' validation, 1,020; 'tstid' test, 6,149). Classes are named by their label number."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..util.errors import UserError
from .bundle import DataBundle
from .download import Remote
from .images import decode_bundle, image_files
from .registry import DatasetInfo, Source, listing_fingerprint, not_found, register, search_dirs

NAME = "flowers102"
NUM_CLASSES = 102
SPLITS = {"train": "trnid", "val": "valid", "test": "tstid"}
URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"


def _mat(path: Path, keys: list[str]) -> dict[str, np.ndarray]:
    from scipy.io import loadmat
    try:
        m = loadmat(path, variable_names=keys)
    except Exception as e:  # scipy raises many types for a foreign or cut file
        raise UserError(f"{path}: not a readable MATLAB file ({e.__class__.__name__}: {e})") from None
    for k in keys:
        if k not in m:
            raise UserError(f"{path}: no {k!r} variable")
    return {k: np.asarray(m[k]).reshape(-1).astype(np.int64) for k in keys}


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir, ("flowers-102",))
    for d in dirs:
        if (d / "jpg").is_dir() and (d / "imagelabels.mat").is_file() and (d / "setid.mat").is_file():
            images = image_files(d / "jpg")
            mats = [d / "imagelabels.mat", d / "setid.mat"]
            return Source(root=d, files=images + mats, fingerprint=listing_fingerprint(d, images, mats))
    raise not_found(NAME, data_dir, dirs, "jpg/ (image_00001.jpg ...), imagelabels.mat, setid.mat")


def read(src: Source, resolution: int) -> DataBundle:
    d = src.root
    labels = _mat(d / "imagelabels.mat", ["labels"])["labels"]
    if len(labels) and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise UserError(f"{d / 'imagelabels.mat'}: labels out of range: found {labels.min()}..{labels.max()}, "
                        f"expected 1..{NUM_CLASSES}")
    ids = _mat(d / "setid.mat", list(SPLITS.values()))
    splits = {}
    for split, key in SPLITS.items():
        bad = ids[key][(ids[key] < 1) | (ids[key] > len(labels))]
        if len(bad):
            raise UserError(f"{d / 'setid.mat'}: {key!r} names image id {bad[0]}, but imagelabels.mat labels "
                            f"images 1..{len(labels)}")
        items = []
        for i in ids[key].tolist():
            p = d / "jpg" / f"image_{i:05d}.jpg"
            if not p.is_file():
                raise UserError(f"{NAME}: {p} is missing (listed in setid.mat {key!r})")
            items.append((p, int(labels[i - 1]) - 1))
        splits[split] = items
    return decode_bundle(NAME, [str(c) for c in range(1, NUM_CLASSES + 1)], splits, resolution,
                         {"files": [str(d / "jpg"), str(d / "imagelabels.mat"), str(d / "setid.mat")],
                          "fingerprint": src.fingerprint})


register(DatasetInfo(
    name=NAME, description="Oxford 102 Flowers, jpg + imagelabels.mat + setid.mat (photos, default 64 px)",
    num_classes=NUM_CLASSES, channels=3, resolution=64, train_size=1020, val_size=1020, test_size=6149,
    locate=locate, read=read,
    layout="jpg/image_NNNNN.jpg, imagelabels.mat; setid.mat trnid (official train), valid (official "
           "validation), tstid (official test)",
    remotes=(Remote(URL + "102flowers.tgz", "102flowers.tgz", md5="52808999861908f626f3c1f4e79d11fa", extract=True),
             Remote(URL + "imagelabels.mat", "imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d"),
             Remote(URL + "setid.mat", "setid.mat", md5="a5357ecc9cb78c4bef273ce3793fc85c")),
))
