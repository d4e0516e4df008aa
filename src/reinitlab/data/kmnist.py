"""Kuzushiji-MNIST (ROIS-CODH): ten cursive Japanese hiragana, the four IDX files."""
from __future__ import annotations

from .idx import register_idx

CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

register_idx(
    "kmnist", "Kuzushiji-MNIST, cursive hiragana, the four IDX files (28 px grey)", CLASSES,
    mirror="http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    md5={"train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
         "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
         "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
         "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134"},
)
