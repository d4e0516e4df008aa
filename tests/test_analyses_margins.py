"""Margins, norms and the margin bound of a two-layer linear model, computed by hand.

    f(x) = B A x,  A = [[2,0],[0,1],[0,0]],  B = diag(1,3,1)
    x = (1,0) y=0 -> logits (2,0,0) margin  2
    x = (0,1) y=1 -> logits (0,3,0) margin  3
    x = (1,1) y=2 -> logits (2,3,0) margin -3
    ||A||_2 = 2, ||A||_F = sqrt 5, ||A^T||_{2,1} = 2+1+0 = 3
    ||B||_2 = 3, ||B||_F = sqrt 11, ||B^T||_{2,1} = 1+3+1 = 5
    R = 2*3 * ((3/2)^(2/3) + (5/3)^(2/3))^(3/2)
"""
import math

import pytest
import torch
import torch.nn as nn

from reinitlab.analyses import ANALYSES, AnalysisData
from reinitlab.core.groups import groups_of
from reinitlab.measure.margins import margins_of

R = 6 * ((3 / 2) ** (2 / 3) + (5 / 3) ** (2 / 3)) ** 1.5


@pytest.fixture
def linear():
    model = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[2.0, 0], [0, 1], [0, 0]]))
        model[1].weight.copy_(torch.diag(torch.tensor([1.0, 3, 1])))
    groups = groups_of(model, {"stem": ["0"], "head": ["1"]})
    data = AnalysisData(x_train=torch.tensor([[1.0, 0], [0, 1], [1, 1]]), y_train=torch.tensor([0, 1, 2]))
    return model, groups, data


def test_margins_of_logits():
    logits = torch.tensor([[3.0, 1, 2], [0, 0, 5], [1, 1, 0]])
    assert margins_of(logits, torch.tensor([0, 1, 0])).tolist() == [1.0, -5.0, 0.0]


def test_margins_and_normalized_margins(linear):
    r = ANALYSES["margins"].run(*linear)
    n = r.numbers
    assert sorted(r.arrays["margins"].tolist()) == [-3.0, 2.0, 3.0]
    # quantiles interpolate linearly between the sorted margins -3, 2, 3
    assert n["q50"] == pytest.approx(2.0)
    assert n["q25"] == pytest.approx(-0.5)
    assert n["q05"] == pytest.approx(-2.5)
    assert n["negative_fraction"] == pytest.approx(1 / 3)
    assert n["frobenius_normalized_q50"] == pytest.approx(2 / math.sqrt(5 * 11), rel=1e-9)
    assert n["spectral_normalized_q50"] == pytest.approx(2 / R, rel=1e-6)
    assert n["spectral_normalized_q05"] == pytest.approx(-2.5 / R, rel=1e-6)
    assert n["log10_spectral_complexity"] == pytest.approx(math.log10(R), rel=1e-7)


def test_norms(linear):
    n = ANALYSES["norms"].run(*linear).numbers
    assert n["frobenius.stem"] == pytest.approx(math.sqrt(5))
    assert n["frobenius.head"] == pytest.approx(math.sqrt(11))
    assert n["frobenius_total"] == pytest.approx(4.0)
    assert n["log10_spectral_product"] == pytest.approx(math.log10(6))
    assert n["log10_spectral_product.head"] == pytest.approx(math.log10(3))
    assert n["log10_frobenius_product"] == pytest.approx(math.log10(math.sqrt(55)))


def test_bound(linear):
    r = ANALYSES["bound"].run(*linear)
    n = r.numbers
    assert n["log10_R"] == pytest.approx(math.log10(R), rel=1e-7)
    assert n["x_frobenius"] == pytest.approx(2.0)  # sqrt(1 + 1 + 2)
    assert (n["n"], n["W"]) == (3, 3)
    assert n["gamma_q50"] == pytest.approx(2.0)
    want = 0.5 + 2.0 * R * math.log(2 * 3) * math.log(3) / (2.0 * 3)
    assert n["bound_q50"] == pytest.approx(want, rel=1e-6)
    assert n["bound_q05"] is None  # gamma at the 5% quantile is negative: no bound
    assert [t["ratio_term"] for t in r.arrays["layers"]] == pytest.approx([(3 / 2) ** (2 / 3), (5 / 3) ** (2 / 3)])


def test_margins_split_clean_and_noisy(linear):
    model, groups, data = linear
    data.noisy = torch.tensor([2])
    data.y_train_true = torch.tensor([0, 1, 1])
    n = ANALYSES["margins"].run(model, groups, data).numbers
    assert n["noisy_q50"] == pytest.approx(-3.0)
    assert n["clean_q50"] == pytest.approx(2.5)
