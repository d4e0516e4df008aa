"""Flatness: the top Hessian eigenvalue of a quadratic, and the loss increase under weight noise."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reinitlab.analyses import ANALYSES, AnalysisData
from reinitlab.analyses.flatness import loss_increase
from reinitlab.analyses.hessian import top_hessian_eigenvalue
from reinitlab.core.groups import groups_of


def _symmetric(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T


class Quadratic(nn.Module):
    """loss(x) = 0.5 x^T A x: its Hessian is A wherever x is."""

    def __init__(self, a):
        super().__init__()
        self.a = a
        self.x = nn.Parameter(torch.randn(len(a), dtype=torch.float64))

    def loss(self):
        return 0.5 * self.x @ self.a @ self.x


@pytest.mark.parametrize("eigs,top", [([7.0, 2.0, -1.0, 0.5, 3.0], 7.0), ([-9.0, 4.0, 1.0], -9.0)])
def test_top_hessian_eigenvalue_of_a_quadratic(eigs, top):
    q = Quadratic(_symmetric(eigs))
    eig, used = top_hessian_eigenvalue(q.loss, [q.x], iters=300, tol=1e-10)
    assert eig == pytest.approx(top, rel=1e-6)  # largest in magnitude, sign kept
    assert used <= len(eigs) + 1  # a Krylov method is exact once it spans the space


def _fitted_mlp():
    """A small MLP fitted to near-zero loss on separable blobs: a minimum that noise can only leave."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 2, 2, generator=g)
    y = (x.flatten(1).sum(1) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    return model, groups_of(model, {"stem": ["1", "2"], "head": ["4"]}), x, y


def test_flatness_is_zero_at_sigma_0_and_grows_with_sigma():
    model, groups, x, y = _fitted_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the analysis must use eval mode and hand the model back in train mode
    r = ANALYSES["flatness"].run(model, groups, AnalysisData(x, y),
                                 ANALYSES["flatness"].options(sigmas=[0.0, 0.05, 0.2, 0.5], samples=4,
                                                              hessian_examples=64))
    assert model.training
    mean = r.arrays["mean"].tolist()
    assert mean[0] == 0.0 and r.numbers["increase_std_sigma_0"] == 0.0
    assert all(s == 0.0 for s in r.arrays["samples"][0])
    assert mean[1] < mean[2] < mean[3] and mean[1] > 0
    assert r.numbers["loss"] < 0.1
    assert r.numbers["hessian_top_eigenvalue"] > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical, buffers included


def test_weights_are_restored_when_the_loss_fails_midway():
    model, _, x, y = _fitted_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    calls = {"n": 0}

    def failing(out, target):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return F.cross_entropy(out, target)

    with pytest.raises(RuntimeError):
        loss_increase(model, x, y, [0.1], samples=5, loss_fn=failing)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_absolute_noise_differs_from_relative_and_is_seeded():
    model, groups, x, y = _fitted_mlp()
    base, rel = loss_increase(model, x, y, [0.1], samples=2, relative=True, seed=1)
    _, rel_again = loss_increase(model, x, y, [0.1], samples=2, relative=True, seed=1)
    _, ab = loss_increase(model, x, y, [0.1], samples=2, relative=False, seed=1)
    _, other_seed = loss_increase(model, x, y, [0.1], samples=2, relative=True, seed=2)
    assert rel == rel_again
    assert rel != ab and rel != other_seed
