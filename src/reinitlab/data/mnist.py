"""MNIST handwritten digits (LeCun et al.), the four IDX files."""
from __future__ import annotations

from .idx import register_idx

CLASSES = [str(d) for d in range(10)]

register_idx(
    "mnist", "MNIST handwritten digits, the four IDX files (28 px grey)", CLASSES,
    mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",  # yann.lecun.com refuses plain downloads
    md5={"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"},
)
