"""After each reset event exactly the intended parameters change, in exactly the intended way."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reinitlab import Reinitializer
from reinitlab.core.reset import Action, fresh_state, peer_init, standardization_of
from reinitlab.models import ARCHS, build_model
from reinitlab.util.seeding import derive

SEED = 7


def trained_model(arch="cnn", steps=4):
    """A small model moved away from its initialization (so kept, rescaled and re-drawn values all
    differ), plus the batches the reset may look at."""
    torch.manual_seed(0)
    model = build_model(arch, 1, 4, width=0.25, resolution=16)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 1, 16, 16)
    y = torch.arange(32) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, init, [(x[:16], y[:16]), (x[16:], y[16:])]


def do_reset(method, r=1, rounds=3, arch="cnn", model_and_batches=None):
    model, init, batches = model_and_batches or trained_model(arch)
    reinit = Reinitializer(model, method, rounds=rounds, seed=SEED)
    reinit.init_norms = {n: float(init[n].norm()) for n, _ in model.named_parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = fresh_state(model, derive(SEED, "fresh", r))
    record = reinit.reset(r, data=batches)
    after = {k: v.clone() for k, v in model.state_dict().items()}
    return model, reinit, before, after, fresh, init, record, batches


def params_of(reinit, groups):
    return [p for g in groups for p in reinit.groups.params[g]]


def assert_only_changed(reinit, before, after, changed):
    for name, _ in reinit.model.named_parameters():
        same = torch.equal(before[name], after[name])
        assert same == (name not in changed), name


@pytest.mark.parametrize("method,reset_groups", [("fc", ["head"]), ("llf", ["block3", "head"]),
                                                  ("llf:start=block1", ["block1", "block2", "block3", "head"])])
def test_whole_group_resets_touch_exactly_their_groups(method, reset_groups):
    model, reinit, before, after, fresh, *_ = do_reset(method)
    changed = params_of(reinit, reset_groups)
    assert_only_changed(reinit, before, after, changed)
    for n in changed:
        assert torch.equal(after[n], fresh[n]), f"{n} is not the fresh draw"


def test_reset_groups_batchnorm_is_reinitialized_and_kept_buffers_stay():
    model, reinit, before, after, *_ = do_reset("llf")  # resets block3 and head
    assert torch.equal(after["block3.1.weight"], torch.ones_like(after["block3.1.weight"]))
    assert torch.equal(after["block3.1.bias"], torch.zeros_like(after["block3.1.bias"]))
    assert torch.equal(after["block3.1.running_mean"], torch.zeros_like(after["block3.1.running_mean"]))
    assert torch.equal(after["block3.1.running_var"], torch.ones_like(after["block3.1.running_var"]))
    assert int(after["block3.1.num_batches_tracked"]) == 0
    assert int(before["block3.1.num_batches_tracked"]) > 0
    for k in ("stem.1.running_mean", "block2.1.running_var", "block1.1.num_batches_tracked"):
        assert torch.equal(before[k], after[k]), k


def test_lw_keeps_rescales_normalizes_and_resets():
    model, reinit, before, after, fresh, init, record, batches = do_reset("lw", r=1, rounds=3)
    kept, reset = params_of(reinit, ["stem", "block1"]), params_of(reinit, ["block2", "block3", "head"])
    for n in reset:
        assert torch.equal(after[n], fresh[n])
    for n in kept:
        n0 = float(init[n].norm())
        if n0 == 0.0:  # BatchNorm biases start at zero: back to zero
            assert torch.equal(after[n], torch.zeros_like(after[n])), n
            continue
        assert math.isclose(float(after[n].norm()), n0, rel_tol=1e-5), n
        cos = F.cosine_similarity(after[n].flatten(), before[n].flatten(), dim=0)
        assert float(cos) > 1 - 1e-6, f"{n} changed direction"
        assert not torch.equal(after[n], before[n]), f"{n} was not rescaled"
    assert record["standardized"] == ["block1"]


def test_lw_rescales_a_small_tensor_up_and_leaves_a_zeroed_one_at_zero():
    model, init, batches = trained_model()
    with torch.no_grad():
        model.stem[0].weight.mul_(1e-3)  # a kept tensor with norm below 1
        model.block1[1].weight.zero_()  # a kept tensor trained to exactly zero: no direction to keep
    init = dict(init, **{"block1.0.weight": init["block1.0.weight"] / init["block1.0.weight"].norm()})  # norm 1
    _, _, _, after, _, init, _, _ = do_reset("lw", r=1, rounds=3, model_and_batches=(model, init, batches))
    for n in ("stem.0.weight", "block1.0.weight"):
        assert math.isclose(float(after[n].norm()), float(init[n].norm()), rel_tol=1e-5), n
    assert torch.equal(after["block1.1.weight"], torch.zeros_like(after["block1.1.weight"]))


@pytest.mark.parametrize("spec,event", [("lw", "keep stem..block1, reset head"),
                                        ("lw:order=top_down", "keep stem..block1, reset head")])
def test_lw_on_two_hidden_layers_keeps_both_and_redraws_the_head(spec, event):
    model, init, batches = trained_model("mlp")  # groups stem, block1, head: K = 2
    *_, record, _ = do_reset(spec, r=1, rounds=1, model_and_batches=(model, init, batches))
    assert record["event"] == event


def test_lw_on_a_model_of_one_layer_and_a_head_keeps_the_layer():
    from collections import OrderedDict
    import torch.nn as nn
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("stem", nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU())),
                                       ("head", nn.Linear(5, 3))]))
    x = torch.randn(8, 1, 4, 4)
    record = Reinitializer(model, "lw", rounds=1, seed=SEED).reset(1, data=[(x, torch.zeros(8, dtype=torch.long))])
    assert record["event"] == "keep stem, reset head"


def test_lw_standardization_is_frozen_and_estimated_on_training_data():
    model, reinit, before, after, fresh, init, record, batches = do_reset("lw", r=1, rounds=3)
    s_mean, s_std = standardization_of(model.block1)
    assert all(p is not s_mean and p is not s_std for p in model.parameters())
    assert "block1.reinit_std_mean" in model.state_dict()
    # statistics: per channel over the block1 outputs of the given batches, BN in train mode
    ref = copy.deepcopy(model).train()
    ref.block1._forward_hooks.clear()  # the raw block output, before the inserted standardization
    feats = torch.cat([ref.block1(ref.stem(x)).detach() for x, _ in batches])
    mean = feats.double().mean(dim=(0, 2, 3))
    var = (feats.double() ** 2).mean(dim=(0, 2, 3)) - mean ** 2
    assert torch.allclose(s_mean.double(), mean, atol=1e-5)
    assert torch.allclose(s_std.double(), var.sqrt(), atol=1e-5)
    # applied exactly once: the model's block1 output is the raw output standardized
    model.train()
    raw = ref.block1(ref.stem(batches[0][0]))
    out = model.block1(model.stem(batches[0][0]))
    shape = (1, -1, 1, 1)
    assert torch.allclose(out, (raw - s_mean.view(shape)) / s_std.view(shape), atol=1e-5)
    frozen_mean, frozen_std = s_mean.clone(), s_std.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    model(batches[0][0])
    assert torch.equal(s_mean, frozen_mean) and torch.equal(s_std, frozen_std)


def test_lw_ablations_and_schedule():
    from reinitlab.methods.lw import last_kept
    assert [last_kept(r, 8, 9, "bottom_up") for r in range(1, 9)] == list(range(1, 9))  # full budget
    assert [last_kept(r, 8, 9, "top_down") for r in range(1, 9)] == list(range(8, 0, -1))
    assert [last_kept(r, 3, 9, "bottom_up") for r in range(1, 4)] == [3, 5, 7]  # spread evenly
    assert [last_kept(r, 5, 4, "bottom_up") for r in range(1, 6)] == [1, 2, 2, 3, 3]  # more rounds than blocks
    model, reinit, before, after, fresh, init, record, _ = do_reset("lw:rescale=false,normalize=false", r=2, rounds=3)
    kept = params_of(reinit, ["stem", "block1", "block2"])
    assert_only_changed(reinit, before, after, params_of(reinit, ["block3", "head"]))
    assert record["standardized"] == []
    assert all(torch.equal(before[n], after[n]) for n in kept)
    record = do_reset("lw:order=top_down", r=1, rounds=3)[6]
    assert record["standardized"] == ["block3"]  # round 1 of top-down re-draws only the head


def _tensor_check(before, after, fresh, name):
    old, new, f = before[name], after[name], fresh[name]
    assert not (old == f).any(), "precondition: trained values differ from the fresh draw"
    kept, redrawn = new == old, new == f
    assert (kept | redrawn).all(), f"{name}: values that are neither kept nor fresh"
    return kept


def test_ke_wels_keeps_exactly_split_rate_with_a_fixed_mask():
    mb = trained_model()
    model, reinit, before, after, fresh, *_ = do_reset("ke:split_rate=0.7", r=1, model_and_batches=mb)
    masks = {}
    for name, p in model.named_parameters():
        if "stem.1" in name:  # BatchNorm weights may equal their fresh value 1 by chance; skip
            continue
        kept = _tensor_check(before, after, fresh, name)
        assert int(kept.sum()) == round(0.7 * p.numel()), name
        masks[name] = kept
    # round 2 re-draws the same positions (KE's mask is fixed once)
    model, reinit2, before, after, fresh, *_ = do_reset("ke:split_rate=0.7", r=2, model_and_batches=(model, *mb[1:]))
    for name, kept1 in masks.items():
        if not (before[name] == fresh[name]).any():
            assert torch.equal(after[name] == before[name], kept1), name


def test_welsr_resamples_its_mask_every_round():
    mb = trained_model()
    _, _, b1, a1, f1, *_ = do_reset("welsr", r=1, model_and_batches=mb)
    m1 = a1["block2.0.weight"] == b1["block2.0.weight"]
    model = mb[0]
    _, _, b2, a2, f2, *_ = do_reset("welsr", r=2, model_and_batches=(model, *mb[1:]))
    m2 = a2["block2.0.weight"] == b2["block2.0.weight"]
    assert int(m1.sum()) == int(m2.sum()) == round(0.8 * m1.numel())
    assert not torch.equal(m1, m2)


def test_ke_kels_keeps_the_leading_channels_and_every_class():
    model, reinit, before, after, fresh, *_ = do_reset("ke:mode=kels,split_rate=0.5")
    w = "block2.0.weight"  # [out, in, 3, 3]
    kept = _tensor_check(before, after, fresh, w)
    o, i = after[w].shape[:2]
    expect = torch.zeros_like(kept)
    expect[: math.ceil(o / 2), : math.ceil(i / 2)] = True
    assert torch.equal(kept, expect)
    head = "head.2.weight"
    kept = _tensor_check(before, after, fresh, head)
    assert kept[:, : math.ceil(after[head].shape[1] / 2)].all() and not kept[:, math.ceil(after[head].shape[1] / 2):].any()


def test_dsd_keeps_the_largest_magnitudes():
    model, reinit, before, after, fresh, *_ = do_reset("dsd:keep=0.6")
    for name in ("block1.0.weight", "head.2.weight"):
        kept = _tensor_check(before, after, fresh, name)
        assert int(kept.sum()) == round(0.6 * kept.numel())
        mags = before[name].abs()
        assert float(mags[kept].min()) >= float(mags[~kept].max())


def test_sp_shrinks_and_perturbs_every_tensor():
    model, reinit, before, after, fresh, *_ = do_reset("sp:shrink=0.5,perturb=0.2")
    for name, _ in model.named_parameters():
        assert torch.allclose(after[name], 0.5 * before[name] + 0.2 * fresh[name], atol=1e-6), name


def test_dnr_keeps_the_highest_snip_scores():
    mb = trained_model()
    model, _, batches = mb[0], mb[1], mb[2]
    ref = copy.deepcopy(model).train()
    ref.zero_grad()
    for x, y in batches:
        F.cross_entropy(ref(x), y).backward()
    score = {n: (p.detach() * p.grad).abs() for n, p in ref.named_parameters()}
    model, reinit, before, after, fresh, *_ = do_reset("dnr:keep=0.75", model_and_batches=mb)
    name = "block2.0.weight"
    kept = _tensor_check(before, after, fresh, name)
    assert int(kept.sum()) == round(0.75 * kept.numel())
    assert float(score[name][kept].min()) >= float(score[name][~kept].max()) - 1e-12


def test_two_rounds_draw_different_fresh_weights_and_a_seed_repeats_them():
    model, *_ = trained_model()
    f1 = fresh_state(model, derive(SEED, "fresh", 1))
    f2 = fresh_state(model, derive(SEED, "fresh", 2))
    f1b = fresh_state(model, derive(SEED, "fresh", 1))
    assert not torch.equal(f1["head.2.weight"], f2["head.2.weight"])
    assert all(torch.equal(f1[k], f1b[k]) for k in f1)
    rng_before = torch.get_rng_state()
    fresh_state(model, 123)
    assert torch.equal(rng_before, torch.get_rng_state()), "a fresh draw must not consume the global RNG"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_lw_on_every_arch_resets_exactly_the_groups_above(arch):
    mb = trained_model(arch, steps=1)
    model, reinit, before, after, fresh, init, record, _ = do_reset("lw:rescale=false", r=1, rounds=2,
                                                                    model_and_batches=mb)
    g = reinit.groups
    k = 1 if g.K > 1 else 0
    from reinitlab.methods.lw import last_kept
    k = last_kept(1, 2, g.K, "bottom_up")
    assert_only_changed(reinit, before, after, g.params_from(k + 1))
    assert record["standardized"] == [g.names[k]]


def test_reinitializer_in_a_users_own_loop():
    """The README example: any nn.Module, automatic groups, our reset between the user's rounds."""
    from test_core_groups import TorchvisionStyle
    torch.manual_seed(0)
    model = TorchvisionStyle()
    x, y = torch.randn(64, 1, 8, 8), torch.arange(64) % 3
    reinit = Reinitializer(model, "lw", rounds=3, seed=0)
    seen_optimizers = []
    for r in range(reinit.rounds + 1):
        if r:
            reinit.reset(r, data=(x, y))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        seen_optimizers.append(opt)
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    assert [h["standardized"][-1] for h in reinit.history] == ["block1", "block2", "block3"]
    # round 3's standardization sits after block3 (layer2.0) and survives a state-dict round trip
    clone = TorchvisionStyle()
    r2 = Reinitializer(clone, "lw", rounds=3)
    r2.load_state_dict(reinit.state_dict())
    clone.load_state_dict(model.state_dict())
    model.eval(), clone.eval()
    assert torch.equal(model(x), clone(x))


# ---- the helpers every reset goes through: a user model's fresh draw, the frozen standardization and
# the forward passes that must leave BatchNorm's running statistics alone -----------------------------
def test_default_init_redraws_each_module_once_with_its_own_initializer():
    from reinitlab.core.reset import default_init

    class Bare(torch.nn.Module):  # a parameter of its own, no reset_parameters: left as it is
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.full((3,), 2.0))

    class Parent(torch.nn.Module):  # reset_parameters but no parameter of its own: its child is drawn by itself
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Linear(3, 3)
            self.calls = 0

        def reset_parameters(self):
            self.calls += 1

    torch.manual_seed(0)
    conv, bn, bare, parent = torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), Bare(), Parent()
    with torch.no_grad():
        bn.weight.fill_(3.0), bn.bias.fill_(1.0), bn.running_mean.fill_(5.0), bn.running_var.fill_(7.0)
    w_before = conv.weight.detach().clone()
    for m in (conv, bn, bare, parent):
        default_init(m)
    assert not torch.equal(conv.weight, w_before)  # re-drawn by Conv2d.reset_parameters
    assert torch.equal(bn.weight, torch.ones(4)) and torch.equal(bn.bias, torch.zeros(4))
    assert torch.equal(bn.running_mean, torch.zeros(4)) and torch.equal(bn.running_var, torch.ones(4))
    assert torch.equal(bare.scale, torch.full((3,), 2.0))
    assert parent.calls == 0


def test_a_second_standardization_on_one_module_is_refused():
    from reinitlab.core.reset import insert_standardize
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    insert_standardize(model, "0", torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="^0 already has a frozen standardization$"):
        insert_standardize(model, "0", torch.zeros(2), torch.ones(2))


def test_preserve_buffers_restores_running_statistics_and_lets_errors_through():
    from reinitlab.core.reset import preserve_buffers
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    before = {k: b.clone() for k, b in model.named_buffers()}
    with preserve_buffers(model):
        assert model.training
        model(torch.randn(8, 1, 6, 6) * 5 + 3)  # train mode: would move the running statistics
    assert not model.training
    assert all(torch.equal(b, before[k]) for k, b in model.named_buffers())
    with pytest.raises(RuntimeError, match="inside"):
        with preserve_buffers(model):
            raise RuntimeError("inside")


def test_apply_event_scales_and_perturbs_kept_tensors_exactly():
    from reinitlab.core.groups import groups_of
    from reinitlab.core.reset import Action, ResetEvent, apply_event
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2), torch.nn.ReLU(),
                                torch.nn.Linear(2, 2))
    groups = groups_of(model)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    fresh = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    per_row = torch.tensor([[0.5], [2.0]])
    event = ResetEvent({"0.weight": Action(scale=2.0), "0.bias": Action(noise=1.0),
                        "2.weight": Action(scale=per_row), "2.bias": Action(offset=torch.full((2,), 0.25)),
                        "4.weight": Action(scale=1.0, noise=0.0)})  # the last is the identity
    apply_event(model, groups, event, fresh)
    p = dict(model.named_parameters())
    assert torch.equal(p["0.weight"], 2.0 * before["0.weight"])
    assert torch.allclose(p["0.bias"], before["0.bias"] + fresh["0.bias"])
    assert torch.equal(p["2.weight"], per_row * before["2.weight"])  # a tensor scale, row by row
    assert torch.equal(p["2.bias"], before["2.bias"] + 0.25)  # an offset alone is not the identity
    assert torch.equal(p["4.weight"], before["4.weight"]) and torch.equal(p["4.bias"], before["4.bias"])


def test_registry_models_are_redrawn_by_their_own_initializer():
    """A fresh draw of a registry model uses its He-normal (fan-out) initializer, not PyTorch's default
    (whose conv weights have about 0.41x that spread)."""
    from reinitlab.core.reset import init_fn_of
    model = build_model("cnn", 1, 4, width=1.0, resolution=16)
    assert init_fn_of(model) is model.init_module
    state = fresh_state(model, 3)
    conv = next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels >= 32)
    w = state[conv + ".weight"]
    he = math.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
    assert w.std().item() == pytest.approx(he, rel=0.05)


def test_changed_counts_the_elements_an_action_gives_a_new_value():
    """What metrics.jsonl records for an in-round event: re-drawn elements, and kept ones that are
    scaled by other than 1, perturbed or offset."""
    shape = (3, 4)
    mask = torch.ones(shape, dtype=torch.bool)
    mask[0, :3] = False  # 3 elements re-drawn
    assert Action().changed(shape) == 0
    assert Action(keep=False).changed(shape) == 12
    assert Action(keep=mask).changed(shape) == 3
    assert Action(keep=True, scale=0.5).changed(shape) == 12
    assert Action(keep=mask, scale=0.5).changed(shape) == 12
    assert Action(keep=mask, noise=0.1).changed(shape) == 12
    assert Action(keep=True, offset=torch.zeros(shape)).changed(shape) == 12
    per_row = torch.tensor([[1.0], [2.0], [1.0]])  # row 1 scaled by 2, the others kept as they are
    assert Action(keep=mask, scale=per_row).changed(shape) == 3 + 4
    assert Action(keep=True, scale=torch.ones(shape)).changed(shape) == 0


def test_peer_init_draws_within_pytorchs_default_bounds_at_every_fan_in():
    torch.manual_seed(0)
    for fan_in in (1, 16):
        lin = nn.Linear(fan_in, 400)
        nn.init.zeros_(lin.weight), nn.init.zeros_(lin.bias)
        peer_init(lin)
        bound = 1 / math.sqrt(fan_in)
        for p in (lin.weight, lin.bias):  # uniform in +-bound: inside it, and reaching near its edge
            assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound
    with pytest.warns(UserWarning):  # torch's note that drawing a zero-element weight does nothing
        empty = nn.Linear(0, 3)  # no inputs: nothing to scale by, the bias is 0 (PyTorch's own rule)
        nn.init.ones_(empty.bias)
        peer_init(empty)
    assert torch.equal(empty.bias, torch.zeros(3))


def test_peer_init_resets_a_norm_layer_to_its_default():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.fill_(2.0), bn.bias.fill_(0.5), bn.running_mean.fill_(3.0), bn.running_var.fill_(4.0)
    peer_init(bn)
    assert torch.equal(bn.weight, torch.ones(3)) and torch.equal(bn.bias, torch.zeros(3))
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))


class HeadFirst(nn.Module):
    """Its head is registered before its stem: named_parameters() lists the re-drawn head first."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 3)
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU())

    def forward(self, x):
        return self.head(self.stem(x))


def test_lw_rescales_every_kept_tensor_whatever_the_order_the_model_registers_them():
    torch.manual_seed(0)
    model = HeadFirst()
    reinit = Reinitializer(model, "lw", rounds=1, groups={"stem": ["stem.1"], "head": ["head"]}, seed=SEED)
    init = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
    with torch.no_grad():
        model.stem[1].weight.mul_(3.0), model.stem[1].bias.mul_(0.5)
    x = torch.randn(8, 1, 4, 4)
    assert reinit.reset(1, data=[(x, torch.zeros(8, dtype=torch.long))])["event"] == "keep stem, reset head"
    for n in ("stem.1.weight", "stem.1.bias"):
        assert math.isclose(float(model.get_parameter(n).detach().norm()), init[n], rel_tol=1e-5), n
