"""CIFAR-10/100 readers on tiny pickled batches in the real layout, and their errors."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from reinitlab.data import load_dataset
from reinitlab.util.errors import UserError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))


def batch(n, seed, label_key="labels", num_classes=10):
    rng = np.random.default_rng(seed)
    return {"batch_label": f"batch {seed}", "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, num_classes, n)], "filenames": [f"{i}.png" for i in range(n)]}


def dump(path: Path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def write_cifar10(root: Path, n=8) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        b = batch(n, i)
        b["labels"][:2] = [(2 * i) % 10, (2 * i + 1) % 10]  # every class in the train set
        dump(d / f"data_batch_{i}", b)
    dump(d / "test_batch", batch(n, 99))
    dump(d / "batches.meta", {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                              "horse", "ship", "truck"], "num_vis": 3072})
    return d


def write_cifar100(root: Path, n=120) -> Path:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    b = batch(n, 1, "fine_labels", 100)
    b["fine_labels"][:100] = list(range(100))
    b["coarse_labels"] = [c // 5 for c in b["fine_labels"]]
    dump(d / "train", b)
    dump(d / "test", batch(10, 2, "fine_labels", 100))
    dump(d / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                      "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return d


def test_cifar10_shapes_labels_and_pixel_layout(tmp_path):
    d = write_cifar10(tmp_path)
    b = load_dataset("cifar10", tmp_path)
    assert b.x_train.shape == (40, 3, 32, 32) and b.x_test.shape == (8, 3, 32, 32)
    assert b.classes[0] == "airplane" and b.num_classes == 10
    with open(d / "data_batch_2", "rb") as f:
        raw = pickle.load(f)
    first = b.x_train[8]  # batch 2 follows batch 1's 8 images
    # 'data' rows are the red plane, then green, then blue, each 32 rows of 32 pixels
    assert torch.equal(first[0].flatten(), torch.from_numpy(raw["data"][0, :1024]))
    assert torch.equal(first[2, 5], torch.from_numpy(raw["data"][0, 2048 + 5 * 32: 2048 + 6 * 32]))
    assert b.y_train[8:16].tolist() == raw["labels"]


def test_cifar10_reads_files_placed_directly_in_data_dir(tmp_path):
    d = write_cifar10(tmp_path)
    assert load_dataset("cifar10", d).x_train.shape[0] == 40


def test_cifar10_byte_keys_as_in_python2_files(tmp_path):
    d = write_cifar10(tmp_path)
    b = batch(8, 3)
    b["labels"][:2] = [6, 7]
    dump(d / "data_batch_3", {k.encode(): v for k, v in b.items()})
    assert load_dataset("cifar10", tmp_path).y_train[16:24].tolist() == b["labels"]


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    b = load_dataset("cifar100", tmp_path, resolution=16)
    assert b.num_classes == 100 and b.classes[7] == "fine7"
    assert b.x_train.shape == (120, 3, 16, 16)
    assert b.y_train[:100].tolist() == list(range(100))


def test_missing_batch_names_expected_files(tmp_path):
    d = write_cifar10(tmp_path)
    os.remove(d / "data_batch_4")
    with pytest.raises(UserError, match=r"data_batch_1, data_batch_2.*reinitlab data prepare cifar10"):
        load_dataset("cifar10", tmp_path)


def test_garbage_file_is_a_bad_pickle(tmp_path):
    d = write_cifar10(tmp_path)
    (d / "test_batch").write_bytes(b"this is not a pickle at all")
    with pytest.raises(UserError, match="test_batch: not a readable CIFAR pickle"):
        load_dataset("cifar10", tmp_path)


def test_truncated_pickle(tmp_path):
    d = write_cifar10(tmp_path)
    raw = (d / "data_batch_1").read_bytes()
    (d / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="data_batch_1: not a readable CIFAR pickle"):
        load_dataset("cifar10", tmp_path)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    d = write_cifar10(tmp_path)
    dump(d / "data_batch_5", {"data": Evil(), "labels": []})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="data_batch_5: .*refusing to load (posix|os).system"):
        load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_wrong_data_shape_and_label_count(tmp_path):
    d = write_cifar10(tmp_path)
    b = batch(8, 1)
    b["data"] = b["data"][:, :3000]
    dump(d / "data_batch_1", b)
    with pytest.raises(UserError, match=r"data_batch_1: 'data' is uint8 \(8, 3000\), expected uint8 \[N, 3072\]"):
        load_dataset("cifar10", tmp_path)
    b = batch(8, 1)
    b["labels"] = b["labels"][:7]
    dump(d / "data_batch_1", b)
    with pytest.raises(UserError, match="data_batch_1: 8 images but 7 labels"):
        load_dataset("cifar10", tmp_path)


def test_label_out_of_range(tmp_path):
    d = write_cifar10(tmp_path)
    b = batch(8, 1)
    b["labels"][0] = 10
    dump(d / "test_batch", b)
    with pytest.raises(UserError, match="test labels out of range: found .*10, expected 0..9"):
        load_dataset("cifar10", tmp_path)


def test_protocol_5_pickles_from_numpy_2_also_load(tmp_path):
    d = write_cifar10(tmp_path)
    b = batch(8, 1)
    b["labels"][:2] = [2, 3]
    dump(d / "data_batch_1", b, protocol=5)
    assert load_dataset("cifar10", tmp_path).y_train[:8].tolist() == b["labels"]
