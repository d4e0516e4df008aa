"""Fashion-MNIST (Zalando), the four IDX files; Debian's dataset-fashion-mnist package is found
without --data-dir."""
from __future__ import annotations

from pathlib import Path

from .idx import FILES, register_idx  # noqa: F401  (FILES: used by scripts/make_embedded.py)

CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot"]
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist

register_idx(
    "fashion-mnist", "Fashion-MNIST, the four IDX files (Zalando; 28 px grey)", CLASSES,
    mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    extra=(SYSTEM_DIR,),
)
