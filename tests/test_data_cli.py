"""`reinitlab data list | info | prepare` through the real CLI entry point."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_data_idx import write_idx_set

from reinitlab.cli import main
from reinitlab.data import DATASETS

BENCHMARKS = ["mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "svhn", "stl10", "flowers102", "dtd",
              "oxford-pets", "caltech101", "eurosat"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("REINITLAB_DATA", str(path))
    return path


def test_list_shows_the_twelve_and_the_embedded_set(capsys, tmp_path):
    write_idx_set(tmp_path / "kmnist")
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line and not line.startswith("your")}
    assert set(BENCHMARKS) | {"fashion-mnist-small"} <= set(rows)
    assert set(DATASETS) == set(rows)
    assert rows["kmnist"][6] == "yes" and rows["cifar10"][6] == "no"
    assert rows["fashion-mnist-small"][6] == "yes"
    assert rows["flowers102"][1:6] == ["102", "1020", "1020", "6149", "64px"]
    assert rows["svhn"][1:6] == ["10", "73257", "-", "26032", "32px"]
    assert rows["mnist"][5] == "28px" and rows["caltech101"][1] == "101"


def test_every_benchmark_documents_its_files_and_has_downloads():
    for name in BENCHMARKS:
        info = DATASETS[name]
        assert info.layout and info.remotes, name
        assert all(r.md5 or r.sha256 for r in info.remotes), name


def test_info_counts_and_grid(capsys, tmp_path):
    for c, n in (("circle", 4), ("square", 3)):
        for i in range(n):
            (tmp_path / "imgs" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    grid = tmp_path / "out" / "grid.png"
    assert main(["data", "info", f"folder:{tmp_path / 'imgs'}?test_fraction=0.25", "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "3 channels, 20 px" in out
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.split()}
    assert lines["circle"] == ["3", "1"] and lines["square"] == ["2", "1"] and lines["total"] == ["5", "2"]
    im = Image.open(grid)
    assert im.format == "PNG" and im.size[1] == 2 * (60 + 2)  # two class rows, 20 px tiles upscaled x3


def test_info_of_a_benchmark_with_its_cache(capsys, tmp_path):
    write_idx_set(tmp_path)
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path), "--resolution", "14"]) == 0
    out = capsys.readouterr().out
    assert "files: IDX" in out and "14 px" in out and "cache: " in out
    assert Path(out.split("cache: ")[1].split()[0]).is_file()


def test_prepare_from_a_data_dir(capsys, tmp_path, cache_dir):
    write_idx_set(tmp_path)
    assert main(["data", "prepare", "mnist", "--data-dir", str(tmp_path), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "mnist: ready: 30 train / 10 test, 10 classes, 28 px" in out
    assert list((cache_dir / "tensors").glob("mnist-28px-*.pt"))


def test_prepare_with_missing_files_exits_2_with_one_line(capsys, tmp_path):
    assert main(["data", "prepare", "kmnist", "--data-dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("reinitlab: kmnist: files not found: expected train-images-idx3-ubyte")
    assert f"reinitlab data prepare kmnist --data-dir {tmp_path}" in err


def test_corrupt_file_and_unknown_name_exit_2(capsys, tmp_path):
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 10)
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path)]) == 2
    assert "train-images-idx3-ubyte: " in capsys.readouterr().err
    assert main(["data", "info", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_train_cli_refuses_too_small_train_size_in_one_line(capsys, tmp_path):
    write_idx_set(tmp_path)
    code = main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--train-size", "5",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "train_size=5 is too small for mnist: class" in err and "use train_size >= " in err
    assert not (tmp_path / "run").exists()
