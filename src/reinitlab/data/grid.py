"""A PNG of sample images: one row per class (up to `max_classes`, evenly spread over the classes),
the first `per_class` training images of that class, the class name on the left."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..util.files import atomic_write_bytes
from .bundle import DataBundle

LABEL_WIDTH = 120


def sample_grid(bundle: DataBundle, path: Path, per_class: int = 8, max_classes: int = 12, min_tile: int = 48) -> Path:
    C = bundle.num_classes
    rows = list(range(C)) if C <= max_classes else sorted({round(i * (C - 1) / (max_classes - 1)) for i in range(max_classes)})
    r = bundle.resolution
    scale = max(1, math.ceil(min_tile / r))
    tile, pad = r * scale, 2
    canvas = Image.new("RGB", (LABEL_WIDTH + per_class * (tile + pad), len(rows) * (tile + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, c in enumerate(rows):
        top = row * (tile + pad)
        draw.text((4, top + tile // 2 - 6), bundle.classes[c][:18], fill="black")
        for col, i in enumerate(np.flatnonzero(bundle.y_train.numpy() == c)[:per_class]):
            a = bundle.x_train[int(i)].numpy()
            im = Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
            im = im.convert("RGB").resize((tile, tile), Image.NEAREST)
            canvas.paste(im, (LABEL_WIDTH + col * (tile + pad), top))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
