"""Operators of a network and their spectral norms, against dense matrices built by hand."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reinitlab.core.groups import groups_of
from reinitlab.core.reset import insert_standardize
from reinitlab.measure.operators import Operator, top_singular_value, trace
from reinitlab.models import build_model


def dense_matrix(fn, in_shape):
    """The matrix of a linear map, one column per basis input."""
    n = math.prod(in_shape)
    basis = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
    return torch.stack([fn(b.unsqueeze(0)).flatten() for b in basis], dim=1)


def test_power_iteration_on_a_known_matrix():
    torch.manual_seed(0)
    q1, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    a = q1[:, :4] @ torch.diag(torch.tensor([5.0, 3.0, 1.0, 0.5], dtype=torch.float64)) @ q2.T
    sigma, used = top_singular_value(lambda v: v @ a.T, lambda u: u @ a, (4,), iters=500, tol=1e-12)
    assert sigma == pytest.approx(5.0, rel=1e-9)
    assert used <= 4  # a Krylov method is exact once it spans the space
    lin = nn.Linear(4, 6, bias=False).double()
    lin.weight.data.copy_(a)
    op = Operator("lin", "linear", lin, (4,), (6,))
    assert op.spectral_norm() == pytest.approx(5.0, rel=1e-12)
    assert op.frobenius() == pytest.approx(math.sqrt(25 + 9 + 1 + 0.25), rel=1e-12)


@pytest.mark.parametrize("conv,size", [
    (nn.Conv2d(3, 4, 3, padding=1), 6),
    (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), 8),  # even size: the adjoint needs output_padding
    (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), 7),
    (nn.Conv2d(2, 3, 3, padding=2, dilation=2), 5),
    (nn.Conv2d(4, 4, 3, padding=1, groups=4), 5),  # depthwise
    (nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), 5),  # adjoint by autograd
    (nn.Conv1d(2, 3, 5, stride=2, padding=1), 11),
])
def test_conv_spectral_norm_equals_the_dense_operator(conv, size):
    torch.manual_seed(1)
    conv = conv.double()
    shape = (conv.in_channels,) + (size,) * (conv.weight.dim() - 2)
    with torch.no_grad():
        out_shape = tuple(conv(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:])
        op = Operator("c", "conv", conv, shape, out_shape)
        dense = dense_matrix(lambda v: conv._conv_forward(v, conv.weight, None), shape)
        exact = float(torch.linalg.matrix_norm(dense, ord=2))
        # the adjoint used by the power iteration is the dense transpose
        fwd, adj = op._conv_maps(conv.weight.detach())
        u = torch.randn(1, *out_shape, dtype=torch.float64)
        assert torch.allclose(adj(u).flatten(), dense.T @ u.flatten(), atol=1e-10)
    assert op.spectral_norm(iters=1000, tol=1e-12) == pytest.approx(exact, rel=1e-9)
    # the reshaped-kernel approximation is a different number: the test would notice a mix-up
    kernel = float(torch.linalg.matrix_norm(conv.weight.detach().reshape(conv.out_channels, -1), ord=2))
    assert abs(kernel - exact) > 1e-3 * exact


def _net():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    net.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running statistics
            net(torch.randn(8, 2, 8, 8) * 3 + 1)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1, 1)
    return net.eval().double()


def test_batchnorm_is_folded_into_the_conv_before_it():
    net = _net()
    ops = trace(net, torch.zeros(1, 2, 8, 8, dtype=torch.float64)).ops
    assert [(o.name, o.kind, o.folded) for o in ops] == [("0", "conv", ["1"]), ("4", "conv", ["5"]), ("9", "linear", [])]
    x = torch.randn(5, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        # BN(conv(x)) - BN(conv(0)) is the folded operator applied to x: the shift drops out
        want = net[1](net[0](x)) - net[1](net[0](torch.zeros_like(x)))
        got = F.conv2d(x, ops[0].weight(), None, 1, 1)
    assert torch.allclose(got, want, atol=1e-10)
    bn = net[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(ops[0].weight(), net[0].weight * scale.view(-1, 1, 1, 1))
    assert torch.equal(ops[0].weight(effective=False), net[0].weight.detach())


def test_standardization_is_folded_into_the_grouped_conv_that_reads_it():
    net = _net()
    mean, std = torch.randn(4), torch.rand(4) + 0.5
    insert_standardize(net, "3", mean, std)  # after the max-pool, as LW does after a group
    ops = trace(net, torch.zeros(1, 2, 8, 8, dtype=torch.float64)).ops
    assert ops[1].folded == ["3:standardization", "5"]
    z = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        bn = net[5]
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        want = F.conv2d(z / std.double().view(1, -1, 1, 1), net[4].weight, None, 1, 1, 1, 2) * s.view(1, -1, 1, 1)
        got = F.conv2d(z, ops[1].weight(), None, 1, 1, 1, 2)
    assert torch.allclose(got, want, atol=1e-10)


def test_standardization_reaches_the_head_through_pooling_and_flatten():
    net = _net()
    std = torch.rand(6) + 0.5
    insert_standardize(net, "6", torch.zeros(6), std)
    ops = trace(net, torch.zeros(1, 2, 8, 8, dtype=torch.float64)).ops
    assert ops[2].folded == ["6:standardization"]
    assert torch.allclose(ops[2].weight(), net[9].weight / std.double().view(1, -1))


def test_a_batchnorm_on_the_input_is_its_own_diagonal_operator():
    bn = nn.BatchNorm2d(2).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    net = nn.Sequential(bn, nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    ops = trace(net, torch.zeros(1, 2, 6, 6)).ops
    assert [o.kind for o in ops] == ["diag", "conv", "linear"]
    assert ops[0].spectral_norm() == pytest.approx(1 / math.sqrt(0.25 + 1e-5), rel=1e-6)
    assert ops[0].norm21_t() == pytest.approx(1 / math.sqrt(4 + 1e-5) + 1 / math.sqrt(0.25 + 1e-5), rel=1e-6)


@pytest.mark.parametrize("arch", ["cnn", "vgg", "resnet18", "mobilenetv2"])
def test_registry_models_trace_to_one_operator_per_conv_and_linear(arch):
    torch.manual_seed(0)
    model = build_model(arch, 1, 10, width=0.25, resolution=28)
    groups = groups_of(model)
    ops = trace(model, torch.randn(1, 1, 28, 28), groups).ops
    weighted = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [o.name for o in ops] == weighted
    assert all(o.kind != "diag" and o.folded for o in ops[:-1])  # every conv has its BatchNorm folded
    assert {o.group for o in ops} == set(groups.names)
