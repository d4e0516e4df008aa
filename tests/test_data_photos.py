"""Image-file benchmarks (flowers102, dtd, oxford-pets, caltech101, eurosat) on tiny trees in their
real layouts with their real split files; the fixed seeded splits; unreadable images."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from reinitlab.data import caltech101, flowers102, load_dataset, oxford_pets
from reinitlab.data.eurosat import CLASSES as EUROSAT_CLASSES
from reinitlab.util.errors import UserError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache"))


def save_image(path: Path, value: int, size=(12, 10), mode="RGB"):
    """A flat image whose pixel value encodes which file it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path, quality=95)


# ---- flowers102 ----------------------------------------------------------------------------
def write_flowers(d: Path, classes=4):
    """Image i (1-based) has label 1 + (i-1) % classes; ids split train/val/test by thirds."""
    n = 3 * classes
    labels = np.array([1 + (i - 1) % classes for i in range(1, n + 1)])
    for i in range(1, n + 1):
        save_image(d / "jpg" / f"image_{i:05d}.jpg", 10 * i)
    savemat(d / "imagelabels.mat", {"labels": labels[None]})
    ids = np.arange(1, n + 1)
    savemat(d / "setid.mat", {"trnid": ids[:classes][None], "valid": ids[classes:2 * classes][None],
                              "tstid": ids[2 * classes:][None]})
    return labels


def test_flowers102_official_train_val_test(tmp_path, monkeypatch):
    monkeypatch.setattr(flowers102, "NUM_CLASSES", 4)
    write_flowers(tmp_path / "flowers-102")
    b = load_dataset("flowers102", tmp_path, resolution=8)
    assert b.x_train.shape == (4, 3, 8, 8) and b.x_val.shape == (4, 3, 8, 8) and b.x_test.shape == (4, 3, 8, 8)
    assert b.y_train.tolist() == [0, 1, 2, 3] and b.y_val.tolist() == [0, 1, 2, 3]
    # image 6 (value 60) is the second validation image
    assert abs(int(b.x_val[1].float().mean()) - 60) <= 2
    assert b.classes == ["1", "2", "3", "4"]


def test_flowers102_default_resolution_64_and_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(flowers102, "NUM_CLASSES", 4)
    write_flowers(tmp_path)
    a = load_dataset("flowers102", tmp_path)
    assert a.x_train.shape[-1] == 64
    monkeypatch.setattr(flowers102, "decode_bundle", lambda *a, **k: pytest.fail("decoded twice"))
    assert torch.equal(load_dataset("flowers102", tmp_path).x_test, a.x_test)


def test_flowers102_bad_setid_and_unreadable_image(tmp_path, monkeypatch):
    monkeypatch.setattr(flowers102, "NUM_CLASSES", 4)
    write_flowers(tmp_path)
    (tmp_path / "jpg" / "image_00003.jpg").write_bytes(b"\xff\xd8\xff garbage, not a jpeg")
    with pytest.raises(UserError, match="image_00003.jpg: unreadable image"):
        load_dataset("flowers102", tmp_path)
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[1, 99]]), "valid": np.array([[2]]), "tstid": np.array([[3]])})
    with pytest.raises(UserError, match="setid.mat: 'trnid' names image id 99"):
        load_dataset("flowers102", tmp_path)
    savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[1, 2, 3, 5] * 3])})
    with pytest.raises(UserError, match="imagelabels.mat: labels out of range: found 1..5, expected 1..4"):
        load_dataset("flowers102", tmp_path)


def test_flowers102_missing_files(tmp_path):
    with pytest.raises(UserError, match=r"jpg/ \(image_00001.jpg ...\), imagelabels.mat, setid.mat"):
        load_dataset("flowers102", tmp_path)


# ---- dtd -------------------------------------------------------------------------------------
def write_dtd(root: Path):
    d = root / "dtd"
    cats = ["banded", "blotchy", "zigzagged"]
    lines = {"train1.txt": [], "val1.txt": [], "test1.txt": []}
    v = 0
    for c in cats:
        for k, split in enumerate(lines):
            for j in range(2):
                v += 5
                name = f"{c}/{c}_{k}{j:03d}.jpg"
                save_image(d / "images" / name, v, size=(20, 14))
                lines[split].append(name)
    (d / "labels").mkdir(parents=True)
    for split, ls in lines.items():
        (d / "labels" / split).write_text("\n".join(ls) + "\n")
    (d / "labels" / "train2.txt").write_text("")  # other official splits are present but unused
    return d


def test_dtd_split1(tmp_path):
    write_dtd(tmp_path)
    b = load_dataset("dtd", tmp_path, resolution=10)
    assert b.classes == ["banded", "blotchy", "zigzagged"]
    assert b.x_train.shape == (6, 3, 10, 10) and b.x_val.shape == (6, 3, 10, 10) and b.x_test.shape == (6, 3, 10, 10)
    assert b.y_train.tolist() == [0, 0, 1, 1, 2, 2] and b.y_test.tolist() == [0, 0, 1, 1, 2, 2]


def test_dtd_listed_file_missing_or_unknown_category(tmp_path):
    d = write_dtd(tmp_path)
    (d / "images" / "blotchy" / "blotchy_2001.jpg").unlink()
    with pytest.raises(UserError, match=r"blotchy_2001.jpg is missing \(listed in labels/test1.txt\)"):
        load_dataset("dtd", tmp_path)
    (d / "labels" / "val1.txt").write_text("striped/striped_0001.jpg\n")
    with pytest.raises(UserError, match="val1.txt: category 'striped' does not occur in train1.txt"):
        load_dataset("dtd", tmp_path)
    (d / "labels" / "val1.txt").write_text("banded/banded_1000.jpg\nbanded_1001.jpg\n")
    with pytest.raises(UserError, match=r"val1.txt: line 2 is 'banded_1001.jpg', expected 'category/file.jpg'"):
        load_dataset("dtd", tmp_path)


# ---- oxford-pets -------------------------------------------------------------------------------
def write_pets(root: Path):
    d = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("american_bulldog", 2, 2), ("Bengal", 1, 3)]
    head = "#Image CLASS-ID SPECIES BREED ID\n#ID: Class ids\n"
    train, test = [head], [head]
    for cid, (breed, species, bid) in enumerate(breeds, 1):
        for i in range(1, 5):
            save_image(d / "images" / f"{breed}_{i}.jpg", 40 * cid + i)
            (train if i <= 3 else test).append(f"{breed}_{i} {cid} {species} {bid}\n")
    (d / "images" / "Abyssinian_99.mat").write_bytes(b"stray file in the official archive")
    (d / "annotations").mkdir()
    (d / "annotations" / "trainval.txt").write_text("".join(train))
    (d / "annotations" / "test.txt").write_text("".join(test))
    return d


def test_oxford_pets_trainval_test(tmp_path, monkeypatch):
    monkeypatch.setattr(oxford_pets, "NUM_CLASSES", 3)
    write_pets(tmp_path)
    b = load_dataset("oxford-pets", tmp_path, resolution=8)
    assert b.classes == ["Abyssinian", "american_bulldog", "Bengal"]
    assert b.x_train.shape == (9, 3, 8, 8) and b.x_test.shape == (3, 3, 8, 8)
    assert b.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and b.y_test.tolist() == [0, 1, 2]
    assert b.x_val is None


def test_oxford_pets_bad_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(oxford_pets, "NUM_CLASSES", 3)
    d = write_pets(tmp_path)
    (d / "annotations" / "test.txt").write_text("Bengal_4 9 1 3\n")
    with pytest.raises(UserError, match=r"test.txt: line 1: class id 9 out of range, expected 1..3"):
        load_dataset("oxford-pets", tmp_path)
    (d / "annotations" / "test.txt").write_text("Bengal_4\n")
    with pytest.raises(UserError, match=r"test.txt: line 1 is 'Bengal_4', expected"):
        load_dataset("oxford-pets", tmp_path)


# ---- caltech101 ----------------------------------------------------------------------------------
def write_caltech(root: Path, sizes: dict[str, int]):
    d = root / "caltech101" / "101_ObjectCategories"
    for c, (name, n) in enumerate(sizes.items()):
        for i in range(1, n + 1):
            save_image(d / name / f"image_{i:04d}.jpg", (7 * i + 50 * c) % 256, size=(9, 7),
                       mode="L" if i % 3 == 0 else "RGB")  # a few grey photos, as in the real set
    for i in range(1, 4):
        save_image(d / "BACKGROUND_Google" / f"image_{i:04d}.jpg", 1)
    return d


def test_caltech101_fixed_30_per_class_split(tmp_path, monkeypatch):
    monkeypatch.setattr(caltech101, "NUM_CLASSES", 2)
    monkeypatch.setattr(caltech101, "TRAIN_PER_CLASS", 3)
    write_caltech(tmp_path, {"accordion": 5, "airplanes": 8})
    b = load_dataset("caltech101", tmp_path, resolution=6)
    assert b.classes == ["accordion", "airplanes"]  # BACKGROUND_Google is not a class
    assert torch.bincount(b.y_train).tolist() == [3, 3] and torch.bincount(b.y_test).tolist() == [2, 5]
    assert b.x_train.shape == (6, 3, 6, 6)
    # the split is fixed: a fresh read (no cache) of a copy elsewhere picks the same images
    import shutil
    shutil.copytree(tmp_path / "caltech101", tmp_path / "copy" / "caltech101")
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path / "cache2"))
    again = load_dataset("caltech101", tmp_path / "copy", resolution=6)
    assert torch.equal(again.x_train, b.x_train) and torch.equal(again.x_test, b.x_test)


def test_caltech101_split_depends_on_the_class_not_its_neighbours(tmp_path, monkeypatch):
    monkeypatch.setattr(caltech101, "TRAIN_PER_CLASS", 3)
    monkeypatch.setattr(caltech101, "NUM_CLASSES", 2)
    write_caltech(tmp_path / "a", {"accordion": 5, "airplanes": 8})
    two = load_dataset("caltech101", tmp_path / "a", resolution=6)
    monkeypatch.setattr(caltech101, "NUM_CLASSES", 3)
    write_caltech(tmp_path / "b", {"accordion": 5, "airplanes": 8, "anchor": 6})
    three = load_dataset("caltech101", tmp_path / "b", resolution=6)
    assert torch.equal(two.x_train[two.y_train == 1], three.x_train[three.y_train == 1])


def test_caltech101_too_small_class_and_wrong_class_count(tmp_path, monkeypatch):
    monkeypatch.setattr(caltech101, "NUM_CLASSES", 2)
    write_caltech(tmp_path, {"accordion": 30, "airplanes": 31})
    with pytest.raises(UserError, match="category 'accordion' has 30 images; the fixed split takes 30 for training"):
        load_dataset("caltech101", tmp_path)
    monkeypatch.setattr(caltech101, "NUM_CLASSES", 101)
    with pytest.raises(UserError, match="2 category folders .*expected 101"):
        load_dataset("caltech101", tmp_path)


# ---- eurosat ----------------------------------------------------------------------------------
def write_eurosat(root: Path, per_class=5):
    d = root / "2750"
    for c, name in enumerate(EUROSAT_CLASSES):
        for i in range(1, per_class + 1):
            save_image(d / name / f"{name}_{i}.jpg", 20 * c + i, size=(64, 64))
    return d


def test_eurosat_fixed_80_20_split(tmp_path):
    write_eurosat(tmp_path)
    b = load_dataset("eurosat", tmp_path, resolution=16)
    assert b.classes == EUROSAT_CLASSES
    assert torch.bincount(b.y_train).tolist() == [4] * 10 and torch.bincount(b.y_test).tolist() == [1] * 10
    assert b.x_train.shape == (40, 3, 16, 16)


def test_eurosat_empty_class(tmp_path):
    d = write_eurosat(tmp_path, per_class=2)
    for f in (d / "Forest").iterdir():
        f.unlink()
    with pytest.raises(UserError, match="class 'Forest' has 0 images"):
        load_dataset("eurosat", tmp_path)


def test_eurosat_missing_class_folder_names_prepare(tmp_path):
    d = write_eurosat(tmp_path, per_class=2)
    import shutil
    shutil.rmtree(d / "River")
    with pytest.raises(UserError, match="River, SeaLake.*reinitlab data prepare eurosat"):
        load_dataset("eurosat", tmp_path)
