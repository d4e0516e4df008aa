"""Describable Textures (DTD r1.0.1): images/<category>/<file>.jpg and the official split lists
labels/train1.txt, val1.txt, test1.txt (split 1 of the ten; 40 images per category in each, one
'category/file.jpg' per line). 47 categories, named by their folder."""
from __future__ import annotations

from pathlib import Path

from ..util.errors import UserError
from .bundle import DataBundle
from .download import Remote
from .images import decode_bundle, image_files
from .registry import DatasetInfo, Source, listing_fingerprint, not_found, register, search_dirs

NAME = "dtd"
SPLITS = {"train": "train1.txt", "val": "val1.txt", "test": "test1.txt"}


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir, ("dtd",))
    for d in dirs:
        lists = [d / "labels" / f for f in SPLITS.values()]
        if (d / "images").is_dir() and all(p.is_file() for p in lists):
            images = image_files(d / "images")
            return Source(root=d, files=images + lists, fingerprint=listing_fingerprint(d, images, lists))
    raise not_found(NAME, data_dir, dirs, "images/<category>/ and labels/" + ", labels/".join(SPLITS.values()))


def read_list(path: Path) -> list[str]:
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    out = [ln for ln in lines if ln]
    for n, ln in enumerate(out, 1):
        if "/" not in ln:
            raise UserError(f"{path}: line {n} is {ln!r}, expected 'category/file.jpg'")
    return out


def read(src: Source, resolution: int) -> DataBundle:
    d = src.root
    lists = {split: read_list(d / "labels" / f) for split, f in SPLITS.items()}
    classes = sorted({ln.split("/", 1)[0] for ln in lists["train"]})
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split, lines in lists.items():
        items = []
        for ln in lines:
            cat = ln.split("/", 1)[0]
            if cat not in index:
                raise UserError(f"{d / 'labels' / SPLITS[split]}: category {cat!r} does not occur in train1.txt")
            p = d / "images" / ln
            if not p.is_file():
                raise UserError(f"{NAME}: {p} is missing (listed in labels/{SPLITS[split]})")
            items.append((p, index[cat]))
        splits[split] = items
    return decode_bundle(NAME, classes, splits, resolution,
                         {"files": [str(d / "images")] + [str(d / "labels" / f) for f in SPLITS.values()],
                          "fingerprint": src.fingerprint})


register(DatasetInfo(
    name=NAME, description="Describable Textures, images/ + labels/train1,val1,test1.txt (default 64 px)",
    num_classes=47, channels=3, resolution=64, train_size=1880, val_size=1880, test_size=1880,
    locate=locate, read=read,
    layout="images/<category>/*.jpg; labels/train1.txt (official train), val1.txt (official validation), "
           "test1.txt (official test), split 1",
    remotes=(Remote("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz", "dtd-r1.0.1.tar.gz",
                    md5="fff73e5086ae6bdbea199a49dfb8a4c1", extract=True),),
))
