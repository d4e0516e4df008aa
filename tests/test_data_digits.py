"""`digits`, scikit-learn's bundled handwritten digits: a fixed split without a seed, exact grey
levels, and a run and a study on it with nothing downloaded."""
import numpy as np
import torch
from sklearn.datasets import load_digits

from reinitlab import TrainConfig, run
from reinitlab.data import DATASETS, load_dataset
from reinitlab.data.digits import TEST_PER_CLASS, split


def test_the_split_is_fixed_disjoint_and_stratified():
    y = load_digits().target
    train, test = split(y)
    assert len(train) == 1297 and len(test) == 500 and len(np.intersect1d(train, test)) == 0
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert np.bincount(y[test]).tolist() == [TEST_PER_CLASS] * 10
    for c in range(10):  # the last of each class, in the file's order
        assert set(test[y[test] == c]) == set(np.flatnonzero(y == c)[-TEST_PER_CLASS:])
    info = DATASETS["digits"]
    assert (info.train_size, info.test_size, info.resolution) == (len(train), len(test), 16)


def test_the_grey_levels_are_exact_at_8_px_and_loads_repeat():
    d = load_digits()
    b = load_dataset("digits", resolution=8)
    train, _ = split(d.target)
    assert b.x_train.dtype == torch.uint8 and b.x_train.shape == (1297, 1, 8, 8)
    assert torch.equal(b.x_train[:, 0].long(), torch.from_numpy(np.rint(d.images[train] * 255 / 16)).long())
    assert torch.equal(b.y_train, torch.from_numpy(d.target[train]))
    again = load_dataset("digits")
    assert again.x_train.shape == (1297, 1, 16, 16) and torch.equal(again.x_test, load_dataset("digits").x_test)
    assert again.source["fingerprint"] == b.source["fingerprint"] and b.source["fingerprint"].startswith("sklearn-")


def test_an_lw_run_on_digits_learns(tmp_path):
    result = run(TrainConfig(dataset="digits", method="lw", train_size=400, width=0.25, epochs=4, rounds=1,
                             threads=1), tmp_path / "run", progress=False)
    assert result["status"] == "finished" and result["test_acc"] > 0.5  # chance is 0.1
