"""Every analysis on a user's own model (residual block, BatchNorm, automatic groups, an LW-style
standardization), through the library entry point."""
import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reinitlab.analyses import ANALYSES, AnalysisData, run_analyses
from reinitlab.core.groups import groups_of
from reinitlab.core.reset import insert_standardize
from reinitlab.util.errors import UserError


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn(self.conv(x)))


class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.res = Residual(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.pool(self.res(self.first(x))).flatten(1))


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = MyNet()
    groups = groups_of(model)  # automatic: stem=first, block1=res, head=fc
    assert groups.names == ["stem", "block1", "head"]
    insert_standardize(model, "first", torch.zeros(8), torch.rand(8) + 0.5)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 1, 8, 8, generator=g), torch.arange(48) % 4
    data = AnalysisData(x_train=x, y_train=y, x_test=x[:24] + 0.1, y_test=y[:24], source="my-net")
    return model, groups, data


def test_all_analyses_run_on_a_users_model(setup, tmp_path):
    model, groups, data = setup
    out = run_analyses(model, groups, data, settings={"flatness.samples": 2, "flatness.hessian_examples": 16},
                       plot_dir=tmp_path)
    assert list(out) == list(ANALYSES)
    for name, entry in out.items():
        assert (tmp_path / entry["plot"]).stat().st_size > 1000
        # every option recorded, even where an analysis has none
        assert set(entry["info"]["options"]) == {f.name for f in dataclasses.fields(ANALYSES[name].Options)}
    layers = out["norms"]["arrays"]["layers"]
    assert [r["name"] for r in layers] == ["first.0", "res.conv", "fc"]
    # the standardization on the stem's output is folded into the residual conv that reads it (the
    # identity shortcut is no operator)
    assert layers[1]["folded"] == ["first:standardization", "res.bn"]
    assert math.isfinite(out["bound"]["numbers"]["log10_R"])
    assert set(out["probes"]["numbers"]) == {f"{k}.{g}" for k in ("knn_acc", "linear_acc", "linear_train_acc")
                                             for g in groups.names}


def test_non_finite_weights_are_refused(setup):
    model, groups, data = setup
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="fc.weight holds non-finite values"):
        run_analyses(model, groups, data, only="margins")


def test_a_model_without_conv_or_linear_modules_is_refused_by_the_bound(setup):
    _, _, data = setup

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.randn(4, 64))
            self.b = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return F.linear(F.linear(x.flatten(1), self.a), self.b)

    model = Functional()
    with pytest.raises(UserError, match="no conv or linear module"):
        ANALYSES["bound"].run(model, None, data)  # the refusal comes before any group is needed
