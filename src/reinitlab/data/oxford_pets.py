"""Oxford-IIIT Pets: images/<Breed_name>_<n>.jpg and the official split lists
annotations/trainval.txt (train, 3,680) and annotations/test.txt (test, 3,669), one
'<image> <class id 1..37> <species> <breed id>' per line, '#' lines are comments. A breed's name
is its image names' prefix (cat breeds are capitalized)."""
from __future__ import annotations

from pathlib import Path

from ..util.errors import UserError
from .bundle import DataBundle
from .download import Remote
from .images import decode_bundle, image_files
from .registry import DatasetInfo, Source, listing_fingerprint, not_found, register, search_dirs

NAME = "oxford-pets"
NUM_CLASSES = 37
SPLITS = {"train": "trainval.txt", "test": "test.txt"}
URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"


def locate(data_dir: Path | None) -> Source:
    dirs = search_dirs(NAME, data_dir, ("oxford-iiit-pet",))
    for d in dirs:
        lists = [d / "annotations" / f for f in SPLITS.values()]
        if (d / "images").is_dir() and all(p.is_file() for p in lists):
            images = [p for p in image_files(d / "images") if p.suffix.lower() == ".jpg"]
            return Source(root=d, files=images + lists, fingerprint=listing_fingerprint(d, images, lists))
    raise not_found(NAME, data_dir, dirs, "images/*.jpg and annotations/" + ", annotations/".join(SPLITS.values()))


def read_list(path: Path) -> list[tuple[str, int]]:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    out = []
    for n, ln in enumerate(lines, 1):
        if not ln.strip() or ln.startswith("#"):
            continue
        parts = ln.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise UserError(f"{path}: line {n} is {ln.strip()!r}, expected '<image> <class id> <species> <breed id>'")
        cid = int(parts[1])
        if not 1 <= cid <= NUM_CLASSES:
            raise UserError(f"{path}: line {n}: class id {cid} out of range, expected 1..{NUM_CLASSES}")
        out.append((parts[0], cid - 1))
    return out


def read(src: Source, resolution: int) -> DataBundle:
    d = src.root
    names: dict[int, str] = {}
    splits = {}
    for split, f in SPLITS.items():
        items = []
        for image, c in read_list(d / "annotations" / f):
            names.setdefault(c, image.rsplit("_", 1)[0])
            p = d / "images" / f"{image}.jpg"
            if not p.is_file():
                raise UserError(f"{NAME}: {p} is missing (listed in annotations/{f})")
            items.append((p, c))
        splits[split] = items
    classes = [names.get(c, f"class {c + 1}") for c in range(NUM_CLASSES)]
    return decode_bundle(NAME, classes, splits, resolution,
                         {"files": [str(d / "images")] + [str(d / "annotations" / f) for f in SPLITS.values()],
                          "fingerprint": src.fingerprint})


register(DatasetInfo(
    name=NAME, description="Oxford-IIIT Pets, 37 breeds, images/ + annotations/trainval,test.txt (default 64 px)",
    num_classes=NUM_CLASSES, channels=3, resolution=64, train_size=3680, test_size=3669, locate=locate, read=read,
    layout="images/*.jpg; annotations/trainval.txt (official train), annotations/test.txt (official test)",
    remotes=(Remote(URL + "images.tar.gz", "images.tar.gz", md5="5c4f3ee8e5d25df40f4fd59a7f44e54c", extract=True),
             Remote(URL + "annotations.tar.gz", "annotations.tar.gz", md5="95a8c909bbe2e81eed6a22bccdf3f68f",
                    extract=True)),
))
