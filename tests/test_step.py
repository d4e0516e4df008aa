"""The one optimizer step (speed/step.py) every run and the precision probe train with: forward under
the precision's autocast, logits cast to fp32, loss plus the method's penalty, gradients cleared to
None, one optimizer step. Checked against the same step written out by hand."""
import torch
import torch.nn.functional as F

from reinitlab.speed.step import autocast_for, sgd_step


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    return model, x, y


def test_fp32_autocast_is_no_autocast_and_bf16_is_cpu_bf16():
    with autocast_for("fp32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_one_step_equals_the_hand_written_step_and_returns_the_loss_without_penalty():
    model, x, y = _setup()
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_twin = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    penalty = lambda: 0.5 * sum((p ** 2).sum() for p in model.parameters())  # noqa: E731
    for _ in range(2):  # a second step: stale gradients would add up if they were not cleared
        loss, out = sgd_step(model, x, y, opt, autocast_for("fp32", x.device), F.cross_entropy, penalty)
        ref_out = twin(x)
        ref_loss = F.cross_entropy(ref_out, y)
        opt_twin.zero_grad()
        (ref_loss + 0.5 * sum((p ** 2).sum() for p in twin.parameters())).backward()
        opt_twin.step()
        assert torch.equal(loss.detach(), ref_loss.detach()) and torch.equal(out.detach(), ref_out.detach())
        for a, b in zip(model.parameters(), twin.parameters(), strict=True):
            assert torch.allclose(a, b, atol=1e-7)
    assert all(p.grad is not None for p in model.parameters())


def test_gradients_are_set_to_none_before_backward():
    model, x, y = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    seen = []
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e6)  # a stale gradient that must not leak into this step
        p.register_hook(lambda g, p=p: seen.append(p.grad is None) or g)
    sgd_step(model, x, y, opt, autocast_for("fp32", x.device), F.cross_entropy)
    assert seen and all(seen)
    assert all(p.grad.abs().max() < 1e3 for p in model.parameters())


def test_bf16_forward_hands_fp32_logits_to_the_loss():
    model, x, y = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    got = {}

    def loss_fn(out, target):
        got["dtype"] = out.dtype
        return F.cross_entropy(out, target)
    loss, out = sgd_step(model, x, y, opt, autocast_for("bf16", x.device), loss_fn)
    assert got["dtype"] == torch.float32 and out.dtype == torch.float32 and loss.dtype == torch.float32
    assert model(x).dtype == torch.float32  # outside the step nothing is autocast


def test_no_penalty_trains_on_the_loss_alone():
    model, x, y = _setup()
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    F.cross_entropy(twin(x), y).backward()
    sgd_step(model, x, y, torch.optim.SGD(model.parameters(), lr=0.5), autocast_for("fp32", x.device), F.cross_entropy)
    for p, t in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, t - 0.5 * t.grad, atol=1e-6)
