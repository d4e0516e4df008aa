"""Your own images: `folder:PATH`, one sub-folder per class of image files (png, jpg, ...).

    PATH/train/<class>/...   with PATH/test/<class>/... (and optionally PATH/val/<class>/..., used as
                             the validation split), or without test/: a fixed test split is drawn
    PATH/<class>/...         a fixed test split is drawn from each class

The drawn test split takes a fraction of each class (default 0.2; `folder:PATH?test_fraction=0.3`)
with a permutation seeded by the class name, the same on every run and machine. Classes are the
sorted folder names. Images are grey when every file is single-channel, RGB otherwise. The default
resolution is the shorter side of the first image, capped at 64 px (`resolution` overrides it).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from ..util.errors import UserError
from .bundle import DataBundle
from .fixed_split import split_class
from .images import decode_bundle, first_size, image_files, is_grey
from .registry import DatasetInfo, Source, listing_fingerprint, register_prefix

DEFAULT_TEST_FRACTION = 0.2
MAX_DEFAULT_RESOLUTION = 64


def parse(spec: str) -> tuple[Path, float]:
    path, _, query = spec.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    unknown = set(options) - {"test_fraction"}
    if unknown:
        raise UserError(f"folder:{spec}: unknown option {sorted(unknown)[0]!r}; valid: test_fraction")
    try:
        frac = float(options.get("test_fraction", DEFAULT_TEST_FRACTION))
    except ValueError:
        raise UserError(f"folder:{spec}: test_fraction={options['test_fraction']!r} is not a number") from None
    if not 0.0 < frac < 1.0:
        raise UserError(f"folder:{spec}: test_fraction={frac} is out of range: expected a number in (0, 1)")
    return Path(path).expanduser(), frac


def class_folders(root: Path, what: str) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise UserError(f"{what}: {root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserError(f"{what}: no class sub-folders in {root}: expected {root}/<class>/<image files>")
    out = {}
    for f in folders:
        files = image_files(f)
        if not files:
            raise UserError(f"{what}: class {f.name!r} is empty: no image files in {f}")
        out[f.name] = files
    return out


def layout(spec: str) -> tuple[Path, float, dict[str, dict[str, list[Path]]], bool]:
    """(root, test_fraction, {split: {class: files}}, test drawn?) as found on disk."""
    root, frac = parse(spec)
    what = f"folder:{spec}"
    if not root.is_dir():
        raise UserError(f"{what}: no such folder {root}")
    if (root / "train").is_dir():
        trees = {"train": class_folders(root / "train", what)}
        for split in ("val", "test"):
            if (root / split).is_dir():
                trees[split] = class_folders(root / split, what)
                extra = sorted(set(trees[split]) - set(trees["train"]))
                if extra:
                    raise UserError(f"{what}: {root / split} has class {extra[0]!r}, which {root / 'train'} lacks")
        drawn = "test" not in trees
    else:
        trees, drawn = {"train": class_folders(root, what)}, True
    return root, frac, trees, drawn


def make_info(spec: str) -> DatasetInfo:
    name = f"folder:{spec}"
    root, frac, trees, drawn = layout(spec)
    classes = sorted(trees["train"])
    first = trees["train"][classes[0]][0]
    res = max(8, min(MAX_DEFAULT_RESOLUTION, min(first_size(first))))
    n_train = sum(len(v) for v in trees["train"].values())
    if drawn:
        n_test = sum(min(int(frac * len(v) + 0.5), len(v) - 1) for v in trees["train"].values())
        n_train -= n_test
    else:
        n_test = sum(len(v) for v in trees["test"].values())

    def locate(_data_dir: Path | None) -> Source:
        r, f, t, _ = layout(spec)  # looked at again: files may have changed since check_dataset
        files = [p for tree in t.values() for fs in tree.values() for p in fs]
        fp = listing_fingerprint(r, files) + (f"-test{f:g}" if drawn else "")
        return Source(root=r, files=files, fingerprint=fp, paths={"trees": t, "fraction": f})

    def read(src: Source, resolution: int) -> DataBundle:
        t, f = src.paths["trees"], src.paths["fraction"]
        index = {c: i for i, c in enumerate(sorted(t["train"]))}
        splits: dict[str, list] = {"train": [], "test": []}
        for c, files in t["train"].items():
            if drawn:
                if len(files) < 2:
                    raise UserError(f"{name}: class {c!r} has 1 image; drawing a test split needs at least 2 per "
                                    "class (or give a test/ folder)")
                train, test = split_class(files, "folder", c, test_fraction=f)
                splits["test"] += [(p, index[c]) for p in test]
            else:
                train = files
            splits["train"] += [(p, index[c]) for p in train]
        for split in ("val", "test"):
            if split in t:
                splits[split] = [(p, index[c]) for c, files in t[split].items() for p in files]
        grey = all(is_grey(p) for p in src.files)
        how = f"test: {f:g} of each class, drawn with a fixed seed" if drawn else "test: test/ folder"
        return decode_bundle(name, sorted(t["train"]), splits, resolution,
                             {"files": [str(src.root)], "fingerprint": src.fingerprint, "split": how}, grey=grey)

    return DatasetInfo(
        name=name, description=f"your image folders in {root}", num_classes=len(classes),
        channels=1 if is_grey(first) else 3, resolution=res, train_size=n_train, test_size=n_test,
        val_size=sum(len(v) for v in trees.get("val", {}).values()), locate=locate, read=read,
        layout=("train/<class>/ (train), " + ("val/<class>/ (validation), " if "val" in trees else "")
                + ("test/<class>/ (test)" if not drawn else f"test: a fixed {frac:g} of each class")
                if (root / "train").is_dir() else f"<class>/ folders; test: a fixed {frac:g} of each class"),
    )


register_prefix("folder", make_info)
