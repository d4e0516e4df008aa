"""IDX readers (mnist, fashion-mnist, kmnist) on tiny files written in the real format, the tensor
cache, and the errors for missing, corrupt and truncated files."""
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from reinitlab.data import DATASETS, check_dataset, load_dataset
from reinitlab.data import idx as idx_module
from reinitlab.data.fashion_mnist import SYSTEM_DIR
from reinitlab.util.errors import UserError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def write_idx_set(d: Path, n_train=30, n_test=10, side=28, gz=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
              "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10}
    d.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        if gz:
            (d / (stem + ".gz")).write_bytes(gzip.compress(idx_bytes(a)))
        else:
            (d / stem).write_bytes(idx_bytes(a))
    return arrays


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "kmnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_reads_official_files_and_split(tmp_path, name, gz):
    arrays = write_idx_set(tmp_path / "raw", gz=gz)
    b = load_dataset(name, tmp_path / "raw")
    assert b.x_train.shape == (30, 1, 28, 28) and b.x_train.dtype == torch.uint8
    assert b.x_test.shape == (10, 1, 28, 28)
    assert torch.equal(b.x_train[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert b.y_train.tolist() == [i % 10 for i in range(30)]
    assert b.y_test.tolist() == [(i * 3) % 10 for i in range(10)]
    assert b.num_classes == 10 and b.x_val is None
    assert len(b.classes) == DATASETS[name].num_classes == 10


def test_data_dir_may_be_the_parent_folder(tmp_path):
    write_idx_set(tmp_path / "kmnist")
    assert load_dataset("kmnist", tmp_path).x_train.shape[0] == 30


def test_resolution_override_resizes(tmp_path):
    write_idx_set(tmp_path)
    b = load_dataset("mnist", tmp_path, resolution=16)
    assert b.x_train.shape == (30, 1, 16, 16) and b.resolution == 16


def test_second_load_comes_from_the_cache(tmp_path, cache_dir, monkeypatch):
    write_idx_set(tmp_path / "d")
    first = load_dataset("mnist", tmp_path / "d")
    files = list((cache_dir / "tensors").glob("mnist-28px-*.pt"))
    assert len(files) == 1

    def no_decoding(path):
        raise AssertionError("decoded again instead of reading the cache")
    monkeypatch.setattr(idx_module, "read_idx", no_decoding)
    second = load_dataset("mnist", tmp_path / "d")
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    assert second.source == first.source


def test_cache_is_keyed_by_resolution_and_content(tmp_path, cache_dir):
    write_idx_set(tmp_path / "d", seed=0)
    a = load_dataset("mnist", tmp_path / "d")
    load_dataset("mnist", tmp_path / "d", resolution=14)
    assert len(list((cache_dir / "tensors").glob("mnist-*"))) == 2
    write_idx_set(tmp_path / "d", seed=1)  # same sizes, new pixels
    b = load_dataset("mnist", tmp_path / "d")
    assert not torch.equal(a.x_train, b.x_train)
    assert a.source["fingerprint"] != b.source["fingerprint"]


def test_unreadable_cache_is_rebuilt(tmp_path, cache_dir, capsys):
    write_idx_set(tmp_path / "d")
    a = load_dataset("mnist", tmp_path / "d")
    (path,) = (cache_dir / "tensors").glob("mnist-*")
    path.write_bytes(b"garbage")
    b = load_dataset("mnist", tmp_path / "d")
    assert torch.equal(a.x_train, b.x_train)
    assert "unreadable cache" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["x_train"].shape == a.x_train.shape


def test_missing_files_name_paths_and_prepare_command(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("kmnist", tmp_path / "nothing")
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "nothing") in msg
    assert f"reinitlab data prepare kmnist --data-dir {tmp_path / 'nothing'}" in msg
    assert "\n" not in msg


def test_bad_magic_names_the_file(tmp_path):
    write_idx_set(tmp_path, gz=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(b"\x12\x34" + bad.read_bytes()[2:])
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte: not an IDX file \(bad magic number 1234"):
        load_dataset("mnist", tmp_path)


def test_wrong_length_names_the_file(tmp_path):
    write_idx_set(tmp_path, gz=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(UserError, match="train-images-idx3-ubyte: wrong length"):
        load_dataset("mnist", tmp_path)


def test_truncated_gzip_names_the_file(tmp_path):
    write_idx_set(tmp_path)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(UserError, match="train-labels-idx1-ubyte.gz: cannot read"):
        load_dataset("mnist", tmp_path)


def test_label_count_mismatch_and_out_of_range(tmp_path):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(29, np.uint8)))
    with pytest.raises(UserError, match="expected \\[N, H, W\\] images and N labels"):
        load_dataset("mnist", tmp_path)
    labels = np.arange(30, dtype=np.uint8) % 10
    labels[3] = 12
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(UserError, match="labels out of range: found 0..12, expected 0..9"):
        load_dataset("mnist", tmp_path)


def test_nothing_half_written_in_the_cache_when_reading_fails(tmp_path, cache_dir):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(UserError):
        load_dataset("mnist", tmp_path)
    assert not (cache_dir / "tensors").exists() or not any((cache_dir / "tensors").iterdir())


@pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_is_found_without_data_dir():
    info = check_dataset("fashion-mnist")
    assert info.available(None)
    assert info.locate(None).root == SYSTEM_DIR
    assert os.path.basename(str(info.locate(None).files[0])).startswith("train-images")
