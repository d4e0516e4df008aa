"""The decision tree on hand-written runs: one sample per combination, features the study varies,
the first split named, n and mean gain per leaf, and no tree from too few combinations."""
import math

import pytest
from report_records import record

from reinitlab.report import tree

SIZES = (250, 500, 1000, 4000, 8000, 16000)


def gain_of(size, arch):
    return (3.0 if size <= 1000 else -1.0) + (0.1 if arch == "vgg" else 0.0)  # points


def runs_for(sizes=SIZES, archs=("cnn", "vgg"), seeds=(0, 1)):
    runs = []
    for n in sizes:
        for a in archs:
            for s in seeds:
                base = 0.6 + 0.01 * s
                runs.append(record("baseline", s, base, train_size=n, arch=a))
                # seed 0 a bit above the gain, seed 1 a bit below: the mean is the gain
                runs.append(record("lw", s, base + (gain_of(n, a) + (0.2 if s == 0 else -0.2)) / 100,
                                   train_size=n, arch=a))
    return runs


def test_samples_are_per_combination_paired_means():
    samples = tree.samples(runs_for() + [record("lw", 5, 0.9, train_size=250)])  # seed 5 has no baseline
    assert len(samples) == 12
    s = next(x for x in samples if x.combo[:3] == ("fashion-mnist-small", "vgg", 500))
    assert s.seeds == 2 and s.gain == pytest.approx(3.1)
    assert s.features[tree.SIZE] == pytest.approx(math.log10(500))
    assert s.features["classes"] == 10 and s.features["resolution"] == 28 and s.features["arch"] == "vgg"


def test_the_first_split_is_the_training_set_size_and_leaves_carry_n_and_mean():
    t = tree.fit(tree.samples(runs_for()))
    assert t.fitted and t.target == "lw − baseline"
    # only what varies: size and arch; dataset, classes, noise, budget are constant here
    assert t.features == [tree.SIZE, "arch = vgg"]  # two levels: one column
    r = t.root
    assert r.feature == tree.SIZE and 10 ** r.threshold == pytest.approx(10 ** ((3 + math.log10(4000)) / 2))
    assert (r.left.n, r.right.n) == (6, 6)
    assert r.left.mean == pytest.approx(3.05) and r.right.mean == pytest.approx(-0.95)
    assert t.first_split == ("The first split is on the training-set size at about 2,000 examples: lw − baseline is "
                             "+3.05 points on average where train size ≤ 2,000 (n=6 combinations) and -0.95 where "
                             "train size > 2,000 (n=6).")
    leaves = t.leaves()
    assert sum(n for _, n, _ in leaves) == 12
    assert all(path[0].startswith("train size") for path, _, _ in leaves)
    assert {round(m, 2) for _, _, m in leaves} <= {3.0, 3.1, 3.05, -1.0, -0.9, -0.95}


def test_a_categorical_first_split_is_named():
    runs = []
    for n in SIZES:
        for a, g in (("cnn", 2.0), ("vgg", -2.0)):
            for s in (0, 1):
                runs.append(record("long", s, 0.6, train_size=n, arch=a))
                runs.append(record("lw", s, 0.6 + (g + 0.1 * s) / 100, train_size=n, arch=a))
    t = tree.fit(tree.samples(runs, reference="long"), reference="long")
    assert t.root.feature == "arch = vgg" and (t.root.left_text, t.root.right_text) == ("arch = cnn", "arch = vgg")
    assert t.first_split == ("The first split is on arch (arch = cnn or vgg): lw − long is +2.05 points on average "
                             "where arch = cnn (n=6 combinations) and -1.95 where arch = vgg (n=6).")
    assert {t.root.left.n, t.root.right.n} == {6}


def test_extra_axes_are_features():
    runs = []
    for wd in (5e-4, 5e-3):
        for n in (250, 500, 1000, 4000):
            for s in (0, 1):
                extra = {"weight_decay": wd, "rounds": 2}
                runs.append(record("baseline", s, 0.6, train_size=n, extra=extra))
                runs.append(record("lw", s, 0.6 + (2.0 if wd > 1e-3 else -2.0) / 100, train_size=n, extra=extra))
    t = tree.fit(tree.samples(runs, extra_axes=["rounds", "weight_decay"]))
    assert "weight_decay" in t.features and "rounds" not in t.features  # rounds is constant
    assert t.root.feature == "weight_decay" and t.root.left_text == "weight_decay ≤ 0.00275"


def test_too_few_combinations_are_not_fitted_and_not_drawn(tmp_path):
    t = tree.fit(tree.samples(runs_for(sizes=(250, 500, 4000))))
    assert not t.fitted and t.root is None
    assert t.reason.startswith("not fitted: 6 combinations with both lw and baseline finished; a tree needs at least 8")
    assert tree.plot(t, tmp_path / "tree.png") is None and not (tmp_path / "tree.png").exists()
    flat = tree.fit(tree.samples(runs_for(archs=("cnn",), sizes=(500,) * 1) * 1), min_combinations=1)
    assert not flat.fitted and flat.reason == "not fitted: no feature varies among the combinations"


def test_plot_is_written(tmp_path):
    t = tree.fit(tree.samples(runs_for()))
    path = tree.plot(t, tmp_path / "plots" / "tree.png")
    assert path.exists() and path.stat().st_size > 5_000


def test_three_levels_are_one_column_each_and_read_as_not_equal():
    t = tree.fit(tree.samples(runs_for(archs=("cnn", "resnet18", "vgg"), sizes=(250, 500, 4000))))
    assert t.fitted and [f for f in t.features if f.startswith("arch")] == ["arch = cnn", "arch = resnet18", "arch = vgg"]
    leaves = [(path, n, round(m, 2)) for path, n, m in t.leaves()]
    assert leaves == [(["train size ≤ 1,414", "arch ≠ vgg"], 4, 3.0), (["train size ≤ 1,414", "arch = vgg"], 2, 3.1),
                      (["train size > 1,414"], 3, -0.97)]  # 3 combinations cannot split into leaves of >= 2
