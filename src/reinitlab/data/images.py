"""Decoding image files (JPEG, PNG, ...) with Pillow into uint8 arrays at a fixed resolution.

Each image is scaled so its shorter side is the resolution, then center-cropped to a square: the
aspect ratio is kept, as in the usual evaluation protocol of these benchmarks. JPEGs are decoded at
a reduced scale where that still leaves enough pixels (Pillow's draft mode), which makes decoding
thousands of photos several times faster.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..util.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively), sorted; hidden files and other suffixes skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):  # symlinked sub-folders are not followed: no loops
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES:
                p = Path(dirpath) / f
                if not p.is_file():  # a dangling link, a pipe (which would block the reader), a device
                    what = "a link to a missing file" if p.is_symlink() else "not a regular file"
                    raise UserError(f"{p}: unreadable image ({what})")
                out.append(p)
    return sorted(out)


def is_grey(path: Path) -> bool:
    """Whether the file stores one channel (reads the header only)."""
    try:
        with Image.open(path) as im:
            return im.mode in GREY_MODES
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable image ({_why(e)})") from None


def first_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable image ({_why(e)})") from None


def load_image(path: Path, resolution: int, grey: bool) -> np.ndarray:
    """uint8 [C, r, r] with C = 1 (grey) or 3 (RGB). Raises UserError naming the file."""
    mode = "L" if grey else "RGB"
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft(mode, (resolution, resolution))  # decode at 1/2..1/8 scale, still >= resolution
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            im = im.convert(mode)
            w, h = im.size
            s = resolution / min(w, h)
            nw, nh = max(resolution, round(w * s)), max(resolution, round(h * s))
            im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)  # antialiased when shrinking
            left, top = (nw - resolution) // 2, (nh - resolution) // 2
            im = im.crop((left, top, left + resolution, top + resolution))
            a = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: unreadable image ({_why(e)})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load_images(paths: Iterable[Path], resolution: int, grey: bool) -> np.ndarray:
    paths = list(paths)
    out = np.empty((len(paths), 1 if grey else 3, resolution, resolution), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = load_image(p, resolution, grey)
    return out


def _why(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not an image file Pillow can decode"
    return f"{e.__class__.__name__}: {e}"


def decode_bundle(name: str, classes: list[str], splits: dict[str, list[tuple[Path, int]]], resolution: int,
                  source: dict, grey: bool = False):
    """A DataBundle from (file, label) lists for 'train', 'test' and optionally 'val'."""
    import torch

    from .bundle import DataBundle
    t = {}
    for split, items in splits.items():
        x = load_images([p for p, _ in items], resolution, grey)
        t[split] = (torch.from_numpy(x), torch.tensor([c for _, c in items], dtype=torch.long))
    val = t.get("val")
    return DataBundle(name=name, x_train=t["train"][0], y_train=t["train"][1], x_test=t["test"][0],
                      y_test=t["test"][1], classes=classes, x_val=val[0] if val else None,
                      y_val=val[1] if val else None, source=source)
