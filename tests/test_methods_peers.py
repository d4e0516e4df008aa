"""Differential tests: each peer-faithful variant against an oracle written here from the peer's
published rule (our own code, from the rule's description), applied to the same trained weights and
the same random numbers. Every parameter and buffer must end exactly where the oracle puts it."""
import copy
from collections import OrderedDict
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_core_groups import TorchvisionStyle

from reinitlab import Reinitializer
from reinitlab.core.reset import fresh_state
from reinitlab.models import build_model
from reinitlab.util.seeding import derive, generator

SEED = 11


def trained(arch: str, channels: int, steps: int = 3) -> nn.Module:
    torch.manual_seed(0)
    if arch == "torchvision-style":
        model, channels = TorchvisionStyle(), 1
    else:
        model = build_model(arch, channels, 5, width=0.25, resolution=16)
    x, y = torch.randn(20, channels, 16, 16), torch.arange(20) % (3 if arch == "torchvision-style" else 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def is_layer(m):
    return isinstance(m, (nn.Conv2d, nn.Linear))


def oracle_peer_draw(model: nn.Module, round_: int) -> dict[str, torch.Tensor]:
    """The KE and LLF code's re-draw, written out: every conv and linear weight from
    kaiming_uniform_(a=sqrt(5)), biases uniform in +-1/sqrt(fan_in), module by module in model order,
    from the round's stream (the same numbers a peer run seeded that way would draw)."""
    clone = copy.deepcopy(model)
    torch.manual_seed(derive(SEED, "fresh", round_))
    with torch.no_grad():
        for m in clone.modules():
            if is_layer(m):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
                if m.bias is not None:
                    fan_in = m.weight[0].numel()
                    nn.init.uniform_(m.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
    return {k: v.detach().clone() for k, v in clone.state_dict().items()}


def assert_same_state(model, expect):
    got = snapshot(model)
    assert got.keys() == expect.keys()
    for k in got:
        assert torch.equal(got[k], expect[k]), k


# ---- Knowledge Evolution ---------------------------------------------------------------------------
def ke_oracle_masks(model: nn.Module, mode: str, rate: float) -> dict[str, torch.Tensor]:
    """KE's split: per conv/linear weight. kels: the first ceil(rate*out) filters over the first
    ceil(rate*in) input channels, except the first conv (3 image channels) whose filters keep every
    input channel; the classifier keeps every class over the first ceil(rate*in) features. wels: each
    element kept when its uniform draw is >= 1 - rate (draws from reinitlab's per-tensor stream)."""
    masks = {}
    layers = [(n, m) for n, m in model.named_modules() if is_layer(m)]
    for i, (n, m) in enumerate(layers):
        shape = m.weight.shape
        if mode == "wels":
            masks[n] = torch.rand(shape, generator=generator(SEED, "ke-mask", f"{n}.weight")) >= 1 - rate
            continue
        mask = torch.zeros(shape, dtype=torch.bool)
        out, cin = math.ceil(rate * shape[0]), math.ceil(rate * shape[1])
        if isinstance(m, nn.Linear) and i == len(layers) - 1:
            mask[:, :cin] = True
        elif shape[1] == 3:  # the KE code's test for the first conv
            mask[:out] = True
        else:
            mask[:out, :cin] = True
        masks[n] = mask
    return masks


def ke_oracle(model: nn.Module, mode: str, rate: float, round_: int) -> dict[str, torch.Tensor]:
    """KE's re-initialization: masked-out conv/linear weights take the peer draw, a conv bias follows
    its weight mask at [:, 0, 0, 0]; linear biases, BatchNorm and every buffer stay."""
    expect = snapshot(model)
    drawn = oracle_peer_draw(model, round_)
    for n, mask in ke_oracle_masks(model, mode, rate).items():
        w = f"{n}.weight"
        expect[w] = torch.where(mask, expect[w], drawn[w])
        m = model.get_submodule(n)
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            b = f"{n}.bias"
            expect[b] = torch.where(mask[:, 0, 0, 0], expect[b], drawn[b])
    return expect


@pytest.mark.parametrize("arch,channels", [("cnn", 1), ("cnn", 3), ("resnet18", 3), ("torchvision-style", 1)])
@pytest.mark.parametrize("mode,rate", [("wels", 0.3), ("wels", 0.5), ("wels", 0.8), ("kels", 0.3), ("kels", 0.5),
                                       ("kels", 2 / 3), ("kels", 0.8)])
def test_ke_peer_matches_the_ke_rule(arch, channels, mode, rate):
    model = trained(arch, channels)
    reinit = Reinitializer(model, f"ke:peer=true,mode={mode},split_rate={rate}", rounds=2, seed=SEED)
    for r in (1, 2):  # the mask is fixed: round 2 re-draws the same positions with new numbers
        expect = ke_oracle(model, mode, rate, r)
        reinit.reset(r)
        assert_same_state(model, expect)


def test_ke_peer_keeps_batchnorm_and_the_default_does_not():
    model = trained("cnn", 3)
    before = snapshot(model)
    peer = copy.deepcopy(model)
    Reinitializer(peer, "ke:peer=true", rounds=1, seed=SEED).reset(1)
    default = copy.deepcopy(model)
    Reinitializer(default, "ke", rounds=1, seed=SEED).reset(1)
    assert torch.equal(peer.stem[1].weight, before["stem.1.weight"])
    assert not torch.equal(default.stem[1].weight, before["stem.1.weight"])


# ---- Later-layer forgetting ---------------------------------------------------------------------------
# torchvision's layer4 in our ResNet groups: the last stage's blocks, named in the oracle itself
LAYER4 = {"resnet18": "block7", "resnet50": "block14"}


def llf_oracle(model: nn.Module, first: str, round_: int) -> dict[str, torch.Tensor]:
    """The LLF code's reset: walking the parameters in model order, from the first one of the named
    layer on, every conv and linear weight (and conv bias) takes the peer draw; BatchNorm, the
    classifier's bias and all buffers are untouched."""
    expect = snapshot(model)
    drawn = oracle_peer_draw(model, round_)
    owners = dict(model.named_modules())
    on = False
    for name, _ in model.named_parameters():
        on = on or name.startswith(first + ".")
        mod_name, _, kind = name.rpartition(".")
        m = owners[mod_name]
        if on and is_layer(m) and (kind == "weight" or isinstance(m, nn.Conv2d)):
            expect[name] = drawn[name]
    return expect


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_llf_peer_matches_the_llf_rule(arch):
    model = trained(arch, 3, steps=2)
    reinit = Reinitializer(model, "llf:peer=true", rounds=2, seed=SEED)
    for r in (1, 2):
        expect = llf_oracle(model, LAYER4[arch], r)
        record = reinit.reset(r)
        assert_same_state(model, expect)
    assert record["event"].startswith(f"reset {LAYER4[arch]}..head")


def test_llf_peer_start_is_the_last_stage_elsewhere_too():
    from reinitlab.core.groups import groups_of
    from reinitlab.methods.llf import last_stage_start
    for arch, first in [("cnn", "block3"), ("vgg", "block3"), ("mobilenetv2", "block18"), ("resnet18", "block7")]:
        m = build_model(arch, 3, 5, width=0.25, resolution=16)
        g = groups_of(m)
        assert g.names[last_stage_start(m, g)] == first, arch


def linear_stack(*widths, norm_only_after: int | None = None) -> nn.Sequential:
    """stem, block1, ... as linear layers of the given output widths, a 3-class head; optionally a
    group holding only a BatchNorm (no weight matrix) after block `norm_only_after`."""
    mods, cin = [], 8
    for i, w in enumerate(widths):
        mods.append(("stem" if i == 0 else f"block{i}", nn.Sequential(nn.Linear(cin, w), nn.ReLU())))
        if norm_only_after == i:
            mods.append(("norm", nn.Sequential(nn.BatchNorm1d(w))))
        cin = w
    return nn.Sequential(OrderedDict(mods + [("head", nn.Linear(cin, 3))]))


@pytest.mark.parametrize("widths,first", [
    ((4, 6, 6, 6), "block1"),  # the run of equal widths reaches block1, never the stem
    ((6, 5, 6, 6), "block2"),  # it stops at the first narrower group below
    ((6, 6), "block1"),  # two hidden layers: the top block alone, though the stem has its width
])
def test_llf_peer_start_on_a_users_linear_model(widths, first):
    from reinitlab.core.groups import groups_of
    from reinitlab.methods.llf import last_stage_start
    m = linear_stack(*widths)
    g = groups_of(m)
    assert g.names[last_stage_start(m, g)] == first


def test_llf_peer_start_passes_over_a_group_without_a_weight_matrix():
    from reinitlab.core.groups import groups_of
    from reinitlab.methods.llf import group_width, last_stage_start
    m = linear_stack(6, 6, 6, norm_only_after=1)
    g = groups_of(m, {name: [name] for name, _ in m.named_children()})
    assert g.names == ["stem", "block1", "norm", "block2", "head"]
    assert group_width(m, g, "norm") is None and g.names[last_stage_start(m, g)] == "block2"


@pytest.mark.parametrize("spec,arch,first", [("llf", "resnet18", "block8"), ("llf:peer=true", "resnet18", "block7"),
                                             ("llf", "mlp", "block1"), ("llf:peer=true", "mlp", "block1")])
def test_llf_starts_at_the_top_block_and_peer_at_the_last_stage(spec, arch, first):
    model = build_model(arch, 1, 4, width=0.25, resolution=16)
    record = Reinitializer(model, spec, rounds=1, seed=SEED).reset(1)
    assert record["event"].split(" (")[0] == f"reset {first}..head"


def test_llf_peer_redraws_conv_biases_and_keeps_linear_ones():
    model = nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(1, 4, 3, bias=True), nn.ReLU())),
        ("block1", nn.Sequential(nn.Conv2d(4, 4, 3, bias=True), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())),
        ("head", nn.Linear(4, 3))]))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # away from any fresh draw
    before = snapshot(model)
    Reinitializer(model, "llf:peer=true", rounds=1, seed=SEED).reset(1)
    after = snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"block1.0.weight", "block1.0.bias", "head.weight"}


# ---- layerwise, as the LLF code re-implements it ------------------------------------------------------
def lw_llf_oracle(model, init_norms, fresh, g: int, G: int, units: list[str]) -> tuple[dict, set]:
    """The LLF code's LW at generation g of G: units are the blocks and the head (the stem is never
    re-drawn); from unit (g*L)//G on, parameters take a fresh model's values; every other weight and
    bias is scaled back to its initial norm (to 0 where that norm is below 1e-6)."""
    expect = snapshot(model)
    L = len(units)
    first = units[(g * L) // G]
    on, reset = False, set()
    for name, p in model.named_parameters():
        on = on or name.startswith(first + ".")
        if on:
            expect[name] = fresh[name]
            reset.add(name)
        else:
            n0 = init_norms[name]
            expect[name] = p.detach() * (n0 / float(p.detach().norm())) if n0 > 1e-6 else torch.zeros_like(p)
    return expect, reset


@pytest.mark.parametrize("rounds", [3, 8])
def test_lw_schedule_floor_matches_the_llf_codes_lw(rounds):
    model = trained("resnet18", 3, steps=2)
    init_norms = {}
    torch.manual_seed(0)
    w0 = build_model("resnet18", 3, 5, width=0.25, resolution=16)  # the same init as trained() drew
    init_norms = {n: float(p.detach().norm()) for n, p in w0.named_parameters()}
    reinit = Reinitializer(model, "lw:schedule=floor,normalize=false", rounds=rounds, seed=SEED)
    reinit.init_norms = init_norms
    units = reinit.groups.names[1:]
    kept_last = []
    for r in range(1, rounds + 1):
        fresh = fresh_state(model, derive(SEED, "fresh", r))
        expect, reset = lw_llf_oracle(model, init_norms, fresh, r, rounds + 1, units)
        before = snapshot(model)
        record = reinit.reset(r)
        got = snapshot(model)
        for name, _ in model.named_parameters():
            if name in reset:
                assert torch.equal(got[name], expect[name]), name
            else:
                assert torch.allclose(got[name], expect[name], rtol=1e-6, atol=1e-7), name
        assert {n for n, _ in model.named_parameters() if not torch.equal(got[n], before[n]) and
                n in reset} <= reset
        kept_last.append(max(i for i, g in enumerate(reinit.groups.names) if record["redrawn_fraction"][g] == 0.0))
    if rounds == 3:
        assert kept_last == [2, 4, 6]  # K=9, R=3: the LLF code keeps up to groups 2, 4, 6 (ceil: 3, 5, 7)
    else:
        assert kept_last == list(range(1, 9))  # the full budget: both schedules agree


# ---- Shrink and perturb ---------------------------------------------------------------------------
def test_sp_buffers_fresh_matches_ash_and_adams():
    """Ash & Adams: every parameter becomes shrink*w + perturb*w_fresh, and the BatchNorm running
    statistics are those of the fresh model."""
    model = trained("resnet18", 3, steps=2)
    fresh = fresh_state(model, derive(SEED, "fresh", 1))
    expect = snapshot(model)
    params = dict(model.named_parameters())
    for k in expect:
        if k in params:
            expect[k] = 0.3 * expect[k] + 0.2 * fresh[k]
        else:
            expect[k] = fresh[k].clone()
    Reinitializer(model, "sp:shrink=0.3,perturb=0.2,buffers=fresh", rounds=1, seed=SEED).reset(1)
    got = snapshot(model)
    for k in expect:
        if k in params:
            assert torch.allclose(got[k], expect[k], rtol=0, atol=1e-7), k
        else:
            assert torch.equal(got[k], expect[k]), k
