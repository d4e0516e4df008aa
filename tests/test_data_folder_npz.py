"""Your own data: `folder:PATH` image trees and `npz:PATH` arrays."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reinitlab.data import check_dataset, load_dataset
from reinitlab.util.errors import UserError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path_factory.mktemp("cache")))  # not inside the image trees


def png(path: Path, value: int, size=(16, 16), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def tree(root: Path, counts: dict[str, int], mode="L", size=(16, 16)):
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            png(root / name / f"{i:03d}.png", 30 * c + i, size, mode)


# ---- folder: ------------------------------------------------------------------------------------
def test_folder_train_and_test_siblings(tmp_path):
    tree(tmp_path / "train", {"cat": 3, "dog": 4})
    tree(tmp_path / "test", {"cat": 2, "dog": 1})
    b = load_dataset(f"folder:{tmp_path}")
    assert b.classes == ["cat", "dog"] and b.channels == 1 and b.resolution == 16
    assert b.x_train.shape == (7, 1, 16, 16) and b.y_train.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert b.y_test.tolist() == [0, 0, 1]
    assert int(b.x_train[4, 0, 0, 0]) == 31  # dog/001.png


def test_folder_val_sibling_is_the_validation_split(tmp_path):
    tree(tmp_path / "train", {"a": 2, "b": 2})
    tree(tmp_path / "val", {"b": 1})
    tree(tmp_path / "test", {"a": 1, "b": 1})
    b = load_dataset(f"folder:{tmp_path}")
    assert b.y_val.tolist() == [1] and b.x_val.shape == (1, 1, 16, 16)


def test_folder_single_tree_draws_a_fixed_test_fraction(tmp_path, monkeypatch):
    tree(tmp_path, {"a": 10, "b": 5, "c": 2}, mode="RGB", size=(20, 12))
    info = check_dataset(f"folder:{tmp_path}")
    assert info.num_classes == 3 and info.channels == 3 and info.resolution == 12
    assert (info.train_size, info.test_size) == (14, 3)
    b = load_dataset(f"folder:{tmp_path}")
    assert torch.bincount(b.y_test, minlength=3).tolist() == [2, 1, 0]  # 0.2 of 10, 5, 2 rounded half up
    assert torch.bincount(b.y_train).tolist() == [8, 4, 2] and b.x_train.shape[1:] == (3, 12, 12)
    c = load_dataset(f"folder:{tmp_path}?test_fraction=0.5")
    assert torch.bincount(c.y_test).tolist() == [5, 3, 1]
    assert not torch.equal(b.y_test, c.y_test)
    # fixed: the same files go to test on every load, cache or not
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path.parent / f"{tmp_path.name}-other-cache"))
    assert torch.equal(load_dataset(f"folder:{tmp_path}").x_test, b.x_test)


def test_folder_grey_only_when_every_image_is_grey(tmp_path):
    tree(tmp_path / "train", {"a": 2, "b": 2})
    tree(tmp_path / "test", {"a": 1, "b": 1})
    png(tmp_path / "train" / "b" / "rgb.png", 7, mode="RGB")
    assert load_dataset(f"folder:{tmp_path}").channels == 3


def test_folder_resolution_override_and_default_cap(tmp_path):
    tree(tmp_path, {"a": 3, "b": 3}, size=(100, 80))
    assert check_dataset(f"folder:{tmp_path}").resolution == 64
    assert load_dataset(f"folder:{tmp_path}", resolution=8).x_train.shape[-2:] == (8, 8)


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        check_dataset(f"folder:{tmp_path / 'nope'}")
    tree(tmp_path / "train", {"a": 2, "b": 2})
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(UserError, match=r"class 'empty' is empty: no image files in .*train/empty"):
        check_dataset(f"folder:{tmp_path}")
    (tmp_path / "train" / "empty").rmdir()
    tree(tmp_path / "test", {"a": 1, "zebra": 1})
    with pytest.raises(UserError, match="test has class 'zebra', which .*train lacks"):
        check_dataset(f"folder:{tmp_path}")
    with pytest.raises(UserError, match="unknown option 'test_frac'"):
        check_dataset(f"folder:{tmp_path}?test_frac=0.1")
    with pytest.raises(UserError, match=r"test_fraction=1.5 is out of range"):
        check_dataset(f"folder:{tmp_path}?test_fraction=1.5")
    with pytest.raises(UserError, match="give a path after 'folder:'"):
        check_dataset("folder:")


def test_folder_without_class_folders_and_single_image_class(tmp_path):
    png(tmp_path / "x.png", 1)
    with pytest.raises(UserError, match="no class sub-folders"):
        check_dataset(f"folder:{tmp_path}")
    tree(tmp_path, {"a": 3, "b": 1})
    with pytest.raises(UserError, match="class 'b' has 1 image; drawing a test split needs at least 2"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_unreadable_image_names_the_file(tmp_path):
    tree(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "b" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(UserError, match=r"b/001.png: unreadable image"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_cache_follows_edits(tmp_path):
    tree(tmp_path, {"a": 3, "b": 3})
    a = load_dataset(f"folder:{tmp_path}")
    png(tmp_path / "a" / "000.png", 200)  # same name, same size on disk, new content and mtime
    import os
    os.utime(tmp_path / "a" / "000.png", ns=(1, 10**18))
    b = load_dataset(f"folder:{tmp_path}")
    assert not torch.equal(a.x_train, b.x_train) or not torch.equal(a.x_test, b.x_test)


# ---- npz: ----------------------------------------------------------------------------------------
def write_npz(path: Path, layout="NHWC", n=12, side=10, **extra):
    rng = np.random.default_rng(0)
    shapes = {"NHW": (side, side), "NHWC": (side, side, 3), "NCHW": (3, side, side)}
    arrays = {"x_train": rng.integers(0, 256, (n, *shapes[layout]), dtype=np.uint8),
              "y_train": np.arange(n) % 3,
              "x_test": rng.integers(0, 256, (4, *shapes[layout]), dtype=np.uint8),
              "y_test": np.array([0, 1, 2, 1])}
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts(tmp_path, layout):
    a = write_npz(tmp_path / "d.npz", layout)
    info = check_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert info.resolution == 10 and info.train_size == 12 and info.test_size == 4 and info.num_classes == 3
    b = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    x = a["x_train"]
    want = {"NHW": lambda: x[:, None], "NHWC": lambda: x.transpose(0, 3, 1, 2), "NCHW": lambda: x}[layout]()
    assert torch.equal(b.x_train, torch.from_numpy(np.ascontiguousarray(want)))
    assert b.classes == ["0", "1", "2"] and b.y_test.tolist() == [0, 1, 2, 1]


def test_npz_class_names_val_and_resize(tmp_path):
    write_npz(tmp_path / "d.npz", classes=np.array(["ant", "bee", "cow"]),
              x_val=np.zeros((2, 10, 10, 3), np.uint8), y_val=np.array([2, 0]))
    assert check_dataset(f"npz:{tmp_path / 'd.npz'}").num_classes == 3
    b = load_dataset(f"npz:{tmp_path / 'd.npz'}", resolution=6)
    assert b.classes == ["ant", "bee", "cow"] and b.y_val.tolist() == [2, 0]
    assert b.x_train.shape == (12, 3, 6, 6) and b.x_val.shape == (2, 3, 6, 6)


def test_npz_errors(tmp_path):
    p = tmp_path / "d.npz"
    with pytest.raises(UserError, match="no such file"):
        check_dataset(f"npz:{p}")
    np.savez(p, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(UserError, match="no array 'x_test'"):
        check_dataset(f"npz:{p}")
    write_npz(p, x_train=np.zeros((12, 10, 10), np.float32))
    with pytest.raises(UserError, match="x_train is float32; expected uint8 images"):
        load_dataset(f"npz:{p}")
    write_npz(p, classes=np.array(["a", "b"]))
    with pytest.raises(UserError, match="train labels out of range: found 0..2, expected 0..1"):
        load_dataset(f"npz:{p}")
    write_npz(p, y_test=np.array([0, -1, 2, 1]))
    with pytest.raises(UserError, match="y_test labels out of range: found -1"):
        load_dataset(f"npz:{p}")
    write_npz(p, y_train=np.arange(12) * 0.5)
    with pytest.raises(UserError, match="y_train is float64 .*expected integer class labels"):
        load_dataset(f"npz:{p}")
    write_npz(p, x_train=np.zeros((12, 3, 10, 3), np.uint8))
    with pytest.raises(UserError, match=r"x_train has shape \(12, 3, 10, 3\): ambiguous"):
        check_dataset(f"npz:{p}")
    write_npz(p, y_train=np.arange(12) % 3 * 2)  # classes 1 and 3 never appear in training
    with pytest.raises(UserError, match="class '1' has no training examples"):
        load_dataset(f"npz:{p}")
    write_npz(p, classes=np.array(["a", None, "c"], dtype=object))
    with pytest.raises(UserError, match="pickled objects"):
        load_dataset(f"npz:{p}")
    p.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(UserError, match="not a readable .npz file"):
        check_dataset(f"npz:{p}")


def test_unknown_dataset_mentions_own_data_prefixes():
    with pytest.raises(UserError, match="unknown dataset 'cifar-10'.*folder:PATH or npz:PATH"):
        check_dataset("cifar-10")
