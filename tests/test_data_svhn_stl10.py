"""SVHN (.mat via scipy) and STL-10 (column-major binaries) on tiny files in the real format."""
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from reinitlab.data import load_dataset
from reinitlab.util.errors import UserError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))


def write_svhn(d: Path, n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, 10 = digit 0
        savemat(d / f"{name}_32x32.mat", {"X": x, "y": y})
        out[name] = (x, y)
    return out


def test_svhn_layout_and_label_10_is_zero(tmp_path):
    raw = write_svhn(tmp_path)
    b = load_dataset("svhn", tmp_path)
    assert b.x_train.shape == (20, 3, 32, 32) and b.x_test.shape == (10, 3, 32, 32)
    x, y = raw["train"]
    # X is [row, column, channel, image]
    assert torch.equal(b.x_train[4], torch.from_numpy(x[:, :, :, 4].transpose(2, 0, 1).copy()))
    assert b.y_train[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert b.classes == [str(i) for i in range(10)]


def test_svhn_second_load_is_cached(tmp_path, monkeypatch):
    from reinitlab.data import svhn
    write_svhn(tmp_path)
    a = load_dataset("svhn", tmp_path)
    monkeypatch.setattr(svhn, "read_mat", lambda path: pytest.fail("decoded again instead of reading the cache"))
    b = load_dataset("svhn", tmp_path)
    assert torch.equal(a.x_test, b.x_test)
    assert len(list((tmp_path / "cache" / "tensors").glob("svhn-32px-*.pt"))) == 1


def test_svhn_missing_and_corrupt(tmp_path):
    with pytest.raises(UserError, match=r"train_32x32.mat and test_32x32.mat.*reinitlab data prepare svhn"):
        load_dataset("svhn", tmp_path)
    write_svhn(tmp_path)
    raw = (tmp_path / "test_32x32.mat").read_bytes()
    (tmp_path / "test_32x32.mat").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(UserError, match="test_32x32.mat: not a readable MATLAB file"):
        load_dataset("svhn", tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not matlab" * 100)
    with pytest.raises(UserError, match="test_32x32.mat: not a readable MATLAB file"):
        load_dataset("svhn", tmp_path)


def test_svhn_labels_out_of_range_and_wrong_shape(tmp_path):
    write_svhn(tmp_path)
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])})
    with pytest.raises(UserError, match="train_32x32.mat: labels out of range: found 1..11, expected 1..10"):
        load_dataset("svhn", tmp_path)
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((28, 28, 2), np.uint8), "y": np.array([[1], [2]])})
    with pytest.raises(UserError, match=r"train_32x32.mat: 'X' is uint8 \(28, 28, 2\), expected uint8 \[32, 32, 3, N\]"):
        load_dataset("svhn", tmp_path)


def write_stl10(d: Path, n_train=20, n_test=10, seed=0) -> np.ndarray:
    """Images are made in [N, C, H, W] and written the way STL-10 stores them: column-major planes."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        x.transpose(0, 1, 3, 2).tofile(d / f"{name}_X.bin")
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(d / f"{name}_y.bin")
        out[name] = x
    (d / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey",
                                                  "ship", "truck"]) + "\n")
    return out


def test_stl10_column_major_images_and_labels(tmp_path):
    x = write_stl10(tmp_path / "stl10_binary")
    b = load_dataset("stl10", tmp_path, resolution=96)
    assert b.x_train.shape == (20, 3, 96, 96) and b.x_test.shape == (10, 3, 96, 96)
    assert torch.equal(b.x_train, torch.from_numpy(x["train"]))
    assert b.y_train[:10].tolist() == list(range(10))
    assert b.classes[7] == "monkey"


def test_stl10_default_resolution_is_64(tmp_path):
    write_stl10(tmp_path)
    b = load_dataset("stl10", tmp_path)
    assert b.x_train.shape == (20, 3, 64, 64)


def test_stl10_wrong_length_and_label_mismatch(tmp_path):
    write_stl10(tmp_path)
    raw = (tmp_path / "test_X.bin").read_bytes()
    (tmp_path / "test_X.bin").write_bytes(raw[:-7])
    with pytest.raises(UserError, match="test_X.bin: wrong length: .* not a whole number of 3x96x96 images"):
        load_dataset("stl10", tmp_path)
    (tmp_path / "test_X.bin").write_bytes(raw[: 27648 * 9])
    with pytest.raises(UserError, match="test_X.bin holds 9 images but .*test_y.bin holds 10 labels"):
        load_dataset("stl10", tmp_path)


def test_stl10_labels_out_of_range(tmp_path):
    write_stl10(tmp_path)
    np.array([0] + [1] * 9, np.uint8).tofile(tmp_path / "test_y.bin")
    with pytest.raises(UserError, match="test_y.bin: labels out of range: found 0..1, expected 1..10"):
        load_dataset("stl10", tmp_path)
