"""Layer probes: perfect on features that separate the classes, chance on features that do not."""
import torch
import torch.nn as nn

from reinitlab.analyses import ANALYSES, AnalysisData
from reinitlab.analyses.probes import group_features, knn_accuracy, linear_probe_accuracy
from reinitlab.core.groups import groups_of
from reinitlab.core.reset import insert_standardize

C = 4


def _blobs(n, seed, dim=6, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(C, dim) * 4 - 1
    y = torch.arange(n) % C
    return centers[y] + spread * torch.randn(n, dim, generator=g), y


def test_knn_and_linear_probe_are_perfect_on_separated_features():
    ftr, ytr = _blobs(80, 0)
    fev, yev = _blobs(40, 1)
    assert knn_accuracy(ftr, ytr, fev, yev, k=5) == 1.0
    held, fit = linear_probe_accuracy(ftr, ytr, fev, yev)
    assert held == 1.0 and fit == 1.0


def test_probes_are_near_chance_on_features_unrelated_to_the_labels():
    ftr, _ = _blobs(200, 0)
    fev, _ = _blobs(200, 1)
    g = torch.Generator().manual_seed(3)
    ytr, yev = torch.randint(0, C, (200,), generator=g), torch.randint(0, C, (200,), generator=g)
    assert knn_accuracy(ftr, ytr, fev, yev) < 0.45
    assert linear_probe_accuracy(ftr, ytr, fev, yev)[0] < 0.45


def test_probes_analysis_per_group():
    # stem keeps the class information (an identity), "block1" destroys it (maps everything to one point)
    model = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, C))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(6))
        model[0].bias.zero_()
        model[1].weight.zero_()
        model[1].bias.fill_(1.0)
    groups = groups_of(model, {"stem": ["0"], "block1": ["1"], "head": ["2"]})
    xtr, ytr = _blobs(80, 0)
    xte, yte = _blobs(40, 1)
    r = ANALYSES["probes"].run(model, groups, AnalysisData(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte))
    assert r.numbers["knn_acc.stem"] == 1.0 and r.numbers["linear_acc.stem"] == 1.0
    assert r.numbers["linear_acc.block1"] <= 0.5 and r.numbers["knn_acc.block1"] <= 0.5
    assert r.arrays["feature_dims"] == {"stem": 6, "block1": 6, "head": C}


def test_group_features_are_pooled_and_see_the_standardization():
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 2, 1))
    groups = groups_of(model, {"stem": ["0"], "head": ["1"]})
    x = torch.randn(5, 1, 4, 4)
    plain = group_features(model, groups, x)
    with torch.no_grad():
        assert torch.allclose(plain["stem"], model[0](x).mean(dim=(2, 3)))
    mean, std = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 0.5])
    insert_standardize(model, "0", mean, std)
    assert torch.allclose(group_features(model, groups, x)["stem"], (plain["stem"] - mean) / std, atol=1e-6)
