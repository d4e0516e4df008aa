"""EuroSAT (RGB): Sentinel-2 satellite patches, 64x64 jpg files in one folder per land-use class
(2750/<Class>/<Class>_<n>.jpg; 27,000 images, 10 classes).

There is no official split. As in the dataset's paper (80/20), each class is split once for
everyone: a permutation of its sorted file names, seeded by the dataset and class name, sends 20%
(rounded) to testing and the rest to training: 21,600 train and 5,400 test.
"""
from __future__ import annotations

from pathlib import Path

from ..util.errors import UserError
from .bundle import DataBundle
from .download import Remote
from .fixed_split import split_class
from .images import decode_bundle, image_files
from .registry import DatasetInfo, Source, listing_fingerprint, not_found, register, search_dirs

NAME = "eurosat"
CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake"]
TEST_FRACTION = 0.2


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir, ("2750", "EuroSAT_RGB", "EuroSAT", "eurosat/2750"))
    for d in dirs:
        if all((d / c).is_dir() for c in CLASSES):
            images = [p for c in CLASSES for p in image_files(d / c)]
            return Source(root=d, files=images, fingerprint=listing_fingerprint(d, images))
    raise not_found(NAME, data_dir, dirs, "2750/ holding the class folders " + ", ".join(CLASSES))


def read(src: Source, resolution: int) -> DataBundle:
    splits: dict[str, list] = {"train": [], "test": []}
    for c, name in enumerate(CLASSES):
        files = image_files(src.root / name)
        if len(files) < 2:
            raise UserError(f"{NAME}: class {name!r} has {len(files)} image{'s' if len(files) != 1 else ''} in "
                            f"{src.root / name}; the fixed split needs at least 2")
        train, test = split_class(files, NAME, name, test_fraction=TEST_FRACTION)
        splits["train"] += [(p, c) for p in train]
        splits["test"] += [(p, c) for p in test]
    return decode_bundle(NAME, CLASSES, splits, resolution,
                         {"files": [str(src.root)], "fingerprint": src.fingerprint,
                          "split": f"fixed: {TEST_FRACTION:.0%} of each class for testing"})


register(DatasetInfo(
    name=NAME, description="EuroSAT RGB land use, 64x64 jpg class folders, fixed 80/20 split (64 px)",
    num_classes=len(CLASSES), channels=3, resolution=64, train_size=21600, test_size=5400, locate=locate, read=read,
    layout="2750/<Class>/*.jpg; no official split: a fixed, seeded 80% of each class for training, 20% for testing",
    remotes=(Remote("https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                    "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip", "EuroSAT.zip",
                    md5="c8fa014336c82ac7804f0398fcb19387", extract=True),),
))
