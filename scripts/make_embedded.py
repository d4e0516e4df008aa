"""Build src/reinitlab/data/files/fashion-mnist-small.npz from Debian's dataset-fashion-mnist.

    apt-get install -y dataset-fashion-mnist && python scripts/make_embedded.py

500 training images per class (drawn with numpy seed 0, kept in original order) and all 10,000
test images; `train_index` records which of the 60,000 training images were taken."""
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from reinitlab.data.fashion_mnist import FILES, SYSTEM_DIR  # noqa: E402
from reinitlab.data.idx import find_file, read_idx  # noqa: E402

PER_CLASS = 500
arrays = {k: read_idx(find_file(SYSTEM_DIR, v)) for k, v in FILES.items()}
rng = np.random.default_rng(0)
idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(arrays["y_train"] == c), PER_CLASS, replace=False)
                              for c in range(10)]))
out = {"x_train": arrays["x_train"][idx], "y_train": arrays["y_train"][idx],
       "x_test": arrays["x_test"], "y_test": arrays["y_test"], "train_index": idx.astype(np.int32)}
h = hashlib.sha256(b"".join(out[k].tobytes() for k in sorted(out))).hexdigest()[:16]
dest = Path(__file__).resolve().parents[1] / "src/reinitlab/data/files/fashion-mnist-small.npz"
np.savez_compressed(dest, fingerprint=np.array(h), **out)
print(dest, dest.stat().st_size, "bytes, fingerprint", h)
