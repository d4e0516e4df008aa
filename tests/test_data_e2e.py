"""End to end: a `folder:` dataset of PNG files trains through `reinitlab.train.run` and writes a run
folder whose split.json records the data; two methods on one data seed see the same examples."""
import json

import numpy as np
import pytest
from PIL import Image

from reinitlab.train.config import TrainConfig
from reinitlab.train.loop import run
from reinitlab.train.resolve import prepare


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def pngs(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for c, name in enumerate(["horizontal", "vertical", "dots"]):
        for split, n in (("train", 12), ("test", 4)):
            for i in range(n):
                a = rng.integers(0, 60, (16, 16), dtype=np.uint8)
                if c == 0:
                    a[::4] = 255
                elif c == 1:
                    a[:, ::4] = 255
                else:
                    a[::4, ::4] = 255
                (root / split / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(a, "L").save(root / split / name / f"{i}.png")
    return root


def test_folder_dataset_trains_end_to_end(pngs, tmp_path):
    cfg = TrainConfig(dataset=f"folder:{pngs}", arch="cnn", width=0.25, epochs=1, rounds=1, method="fc",
                      batch_size=8, threads=1, device="cpu", val_fraction=0.25)
    out = tmp_path / "run"
    result = run(cfg, out=out, progress=False)
    assert result["status"] == "finished"
    for f in ("config.json", "split.json", "env.json", "metrics.jsonl", "result.json", "model.pt"):
        assert (out / f).is_file(), f
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == f"folder:{pngs}" and config["resolution"] == 16
    split = json.loads((out / "split.json").read_text())
    assert split["dataset"] == f"folder:{pngs}" and len(split["train"]) == 27 and len(split["val"]) == 9
    assert split["source"] and len(split["hash"]) == 16
    assert 0.0 <= result["test_acc"] <= 1.0


def test_two_methods_on_one_data_seed_see_identical_examples(pngs):
    base = dict(dataset=f"folder:{pngs}", arch="cnn", width=0.25, epochs=1, train_size=15, label_noise=0.2,
                data_seed=7, device="cpu", threads=1)
    a = prepare(TrainConfig(method="fc", seed=1, **base))
    b = prepare(TrainConfig(method="lw", seed=2, **base))
    assert a.split.manifest(a.bundle) == b.split.manifest(b.bundle)
    assert len(a.split.train) == 15 and len(a.split.noisy) == 3
