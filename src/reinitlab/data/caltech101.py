"""Caltech-101: 101_ObjectCategories/<category>/image_NNNN.jpg, 101 categories (BACKGROUND_Google,
a clutter folder, is not a class).

There is no official split. The usual protocol trains on 30 images per category; here the 30 are
fixed once for everyone: a permutation of each category's sorted file names, seeded by the dataset
and category name, picks 30 for training and leaves the rest (1 to 770 per category) for testing,
3,030 train and 5,647 test in all. Every category has at least 31 images.
"""
from __future__ import annotations

from pathlib import Path

from ..util.errors import UserError
from .bundle import DataBundle
from .download import Remote
from .fixed_split import split_class
from .images import decode_bundle, image_files
from .registry import DatasetInfo, Source, listing_fingerprint, not_found, register, search_dirs

NAME = "caltech101"
FOLDER = "101_ObjectCategories"
EXCLUDED = {"BACKGROUND_Google"}
NUM_CLASSES = 101
TRAIN_PER_CLASS = 30


def _categories(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in EXCLUDED)


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir, (FOLDER, f"caltech-101/{FOLDER}", f"caltech101/{FOLDER}"))
    for d in dirs:
        if d.name == FOLDER and d.is_dir():
            images = [p for c in _categories(d) for p in image_files(c)]
            return Source(root=d, files=images, fingerprint=listing_fingerprint(d, images))
    raise not_found(NAME, data_dir, dirs, f"{FOLDER}/<category>/image_NNNN.jpg")


def read(src: Source, resolution: int) -> DataBundle:
    cats = _categories(src.root)
    if len(cats) != NUM_CLASSES:
        raise UserError(f"{src.root}: {len(cats)} category folders (besides BACKGROUND_Google), expected {NUM_CLASSES}")
    splits: dict[str, list] = {"train": [], "test": []}
    for c, folder in enumerate(cats):
        files = image_files(folder)
        if len(files) <= TRAIN_PER_CLASS:
            raise UserError(f"{NAME}: category {folder.name!r} has {len(files)} images; the fixed split takes "
                            f"{TRAIN_PER_CLASS} for training and needs at least one more for testing ({folder})")
        train, test = split_class(files, NAME, folder.name, n_train=TRAIN_PER_CLASS)
        splits["train"] += [(p, c) for p in train]
        splits["test"] += [(p, c) for p in test]
    return decode_bundle(NAME, [c.name for c in cats], splits, resolution,
                         {"files": [str(src.root)], "fingerprint": src.fingerprint,
                          "split": f"fixed: {TRAIN_PER_CLASS} train per category, rest test"})


register(DatasetInfo(
    name=NAME, description="Caltech-101 object categories, fixed 30-per-class train split (default 64 px)",
    num_classes=NUM_CLASSES, channels=3, resolution=64, train_size=3030, test_size=5647, locate=locate, read=read,
    layout=f"{FOLDER}/<category>/*.jpg without BACKGROUND_Google; no official split: a fixed, seeded "
           f"{TRAIN_PER_CLASS} images per category for training, the rest for testing",
    remotes=(Remote("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1",
                    "caltech-101.zip", md5="3138e1922a9193bfa496528edbbc45d0", extract=True,
                    inner=("caltech-101/101_ObjectCategories.tar.gz",)),),
))
