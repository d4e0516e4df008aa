"""Memorization on a lookup model that provably memorizes (or provably does not)."""
import pytest
import torch
import torch.nn as nn

from reinitlab.analyses import ANALYSES, AnalysisData
from reinitlab.core.groups import groups_of

N, C = 20, 4


def _lookup(labels):
    """One-hot inputs e_i; the head maps e_i to labels[i]: predicts exactly `labels` on the training set."""
    model = nn.Sequential(nn.Linear(N, N, bias=False), nn.Linear(N, C, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(N))
        model[1].weight.copy_(5.0 * nn.functional.one_hot(labels, C).T.float())
    return model, groups_of(model, {"stem": ["0"], "head": ["1"]})


@pytest.fixture
def noisy_data():
    true = torch.arange(N) % C
    noisy = torch.tensor([1, 6, 7, 15])
    trained = true.clone()
    trained[noisy] = (trained[noisy] + 1) % C  # a different class, as label noise does
    # test inputs all zero: every logit ties at 0, argmax is class 0
    x_test, y_test = torch.zeros(8, N), torch.tensor([0, 0, 1, 2, 3, 0, 1, 2])
    return true, trained, AnalysisData(x_train=torch.eye(N), y_train=trained, x_test=x_test, y_test=y_test,
                                       noisy=noisy, y_train_true=true)


def test_a_lookup_of_the_noisy_labels_memorizes_every_noisy_example(noisy_data):
    true, trained, data = noisy_data
    n = ANALYSES["memorization"].run(*_lookup(trained), data).numbers
    assert n["noisy_examples"] == 4 and n["label_noise"] == pytest.approx(0.2)
    assert n["memorized_fraction"] == 1.0
    assert n["noisy_true_label_acc"] == 0.0
    assert n["clean_train_acc"] == 1.0 and n["train_acc"] == 1.0
    assert n["test_acc"] == pytest.approx(3 / 8)


def test_a_lookup_of_the_true_labels_memorizes_nothing(noisy_data):
    true, trained, data = noisy_data
    n = ANALYSES["memorization"].run(*_lookup(true), data).numbers
    assert n["memorized_fraction"] == 0.0
    assert n["noisy_true_label_acc"] == 1.0
    assert n["train_acc"] == pytest.approx(16 / 20)


def test_without_label_noise_it_says_so():
    true = torch.arange(N) % C
    r = ANALYSES["memorization"].run(*_lookup(true), AnalysisData(x_train=torch.eye(N), y_train=true))
    assert r.numbers["memorized_fraction"] is None and r.numbers["noisy_examples"] == 0
    assert r.numbers["clean_train_acc"] == 1.0
    assert "no label noise" in r.info["note"]
