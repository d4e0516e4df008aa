"""Continual Backprop against an oracle written here from the rule (the CBP code's generate-and-test
step, gnt.py / convGnT.py, as cbp.py's docstring states it), on the same weights, batches and re-drawn
numbers, step after step, with SGD momentum and with Adam, on an MLP (linear -> linear) and a small CNN
(conv -> BatchNorm -> conv with a bias -> flatten -> linear: a norm layer, a conv's outgoing weights
and spread columns). The oracle keeps its own ages, utilities, means and debts and applies each
replacement layer by layer, in the CBP code's order.

The three known re-implementation bugs each have a test that fails when the rule is broken that way:
ranking by the uncorrected utility, a replacement debt that grows before any unit is mature (a burst
at the first maturity), and optimizer state left on replaced slices."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reinitlab import Reinitializer
from reinitlab.core.reset import fresh_modules
from reinitlab.methods.units import require_units, unit_layers
from reinitlab.util.errors import UserError
from reinitlab.util.seeding import derive

SEED = 5


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 4))


MLP_GROUPS = {"stem": ["1"], "block1": ["3"], "head": ["5"]}
MLP_PAIRS = [("1", "3", None, 1), ("3", "5", None, 1)]  # (layer, next layer, norm, columns per unit)


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))


CNN_GROUPS = {"stem": ["0", "1"], "block1": ["4"], "head": ["7"]}
CNN_PAIRS = [("0", "4", "1", 1), ("4", "7", None, 16)]


def batches(n=40, size=4, batch=32):
    g = torch.Generator().manual_seed(1)
    shape = (batch, 1, 8, 8) if size == 8 else (batch, 1, 4, 4)
    return [(torch.randn(shape, generator=g), torch.randint(0, 4, (batch,), generator=g)) for _ in range(n)]


def make_optimizer(model, kind):
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return torch.optim.Adam(model.parameters(), lr=0.01)


def forward_recording(model: nn.Sequential, x, wanted):
    """Run the Sequential layer by layer; the input each layer in `wanted` receives."""
    seen = {}
    for name, m in model.named_children():
        if name in wanted:
            seen[name] = x.detach()
        x = m(x)
    return x, seen


class Oracle:
    """CBP from the rule: per (layer, next layer) pair, every step after the optimizer step."""

    def __init__(self, pairs, rate, maturity, decay, utility, compensate):
        self.pairs, self.rate, self.maturity, self.decay = pairs, rate, maturity, decay
        self.utility, self.compensate = utility, compensate
        self.state = {}

    @torch.no_grad()
    def step(self, model, seen, opt, round_, step):
        mods = dict(model.named_children())
        d = self.decay
        chosen = {}
        for name, nxt_name, _, spread in self.pairs:
            layer, nxt = mods[name], mods[nxt_name]
            width = layer.weight.shape[0]
            st = self.state.setdefault(name, {"age": torch.zeros(width, dtype=torch.long), "u": torch.zeros(width),
                                              "m": torch.zeros(width), "owed": 0.0})
            st["age"] += 1
            h = seen[nxt_name].float()
            if isinstance(nxt, nn.Linear):  # convGnT: the columns' means, averaged over a unit's columns
                mean = h.reshape(h.shape[0], width * spread).mean(0).view(width, spread).mean(1)
            else:
                mean = h.mean((0, 2, 3))
            st["m"] = d * st["m"] + (1 - d) * mean
            corr = (1 - d ** st["age"].double()).float()
            h_bar = st["m"] / corr
            if isinstance(nxt, nn.Linear):
                cols = h.reshape(h.shape[0], width, spread)
                dev = cols - h_bar.view(1, -1, 1) if self.utility == "adaptable_contribution" else cols
                y = (nxt.weight.abs().mean(0).view(width, spread) * dev.abs().mean(0)).mean(1)
            else:
                dev = h - h_bar.view(1, -1, 1, 1) if self.utility == "adaptable_contribution" else h
                y = nxt.weight.abs().mean((0, 2, 3)) * dev.abs().mean((0, 2, 3))
            if self.utility == "adaptable_contribution":
                y = y / layer.weight.abs().reshape(width, -1).mean(1)
            st["u"] = d * st["u"] + (1 - d) * y
            u_hat = st["u"] / corr
            eligible = [i for i in range(width) if st["age"][i] > self.maturity]
            if not eligible:
                continue
            st["owed"] += self.rate * len(eligible)
            k = int(st["owed"])
            st["owed"] -= k
            if k == 0:
                continue
            ranked = sorted(eligible, key=lambda i: (float(u_hat[i]), i))[:k]
            chosen[name] = (ranked, h_bar.clone())
            for i in ranked:
                st["u"][i], st["m"][i], st["age"][i] = 0.0, 0.0, 0
        replace_units(model, self.pairs, chosen, opt, round_, step, self.compensate)
        return chosen


@torch.no_grad()
def replace_units(model, pairs, chosen, opt, round_, step, compensate):
    """The replacement as the CBP and SNR codes do it, layer by layer: incoming rows (and a norm
    layer's elements and statistics) from the step's re-draw, the bias 0, outgoing columns 0, the
    next bias compensated by h_bar (`compensate`), and the optimizer state of all of these zeroed.
    `chosen`: layer -> (unit indices, h_bar)."""
    mods = dict(model.named_children())
    source_seed = derive(SEED, "fresh", round_, step)
    for name, nxt_name, norm, spread in pairs:
        if name not in chosen:
            continue
        units, h_bar = chosen[name]
        layer, nxt = mods[name], mods[nxt_name]
        drawn = fresh_modules(model, [f"{name}.weight"] + ([f"{norm}.weight"] if norm else []), source_seed)
        cols = [c for i in units for c in range(i * spread, (i + 1) * spread)] if isinstance(nxt, nn.Linear) \
            else units
        if compensate and nxt.bias is not None:
            w = nxt.weight.view(nxt.weight.shape[0], -1, spread) if isinstance(nxt, nn.Linear) else nxt.weight
            sums = w.reshape(w.shape[0], w.shape[1], -1).sum(2)
            nxt.bias += (sums[:, units] * h_bar[units]).sum(1)
        for i in units:
            layer.weight[i] = drawn[f"{name}.weight"][i]
            if layer.bias is not None:
                layer.bias[i] = 0.0
            if norm:
                bn = mods[norm]
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, key)[i] = drawn[f"{norm}.{key}"][i]
        nxt.weight[:, cols] = 0.0
        clear(opt, layer.weight, (units,))
        if layer.bias is not None:
            clear(opt, layer.bias, (units,))
        if norm:
            clear(opt, mods[norm].weight, (units,))
            clear(opt, mods[norm].bias, (units,))
        clear(opt, nxt.weight, (slice(None), cols))


def clear(opt, p, index):
    for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
        if key in opt.state.get(p, {}):
            opt.state[p][key][index] = 0.0


def train_step(model, opt, x, y, record=None):
    model.train()
    opt.zero_grad()
    if record is None:
        out, seen = model(x), {}
    else:
        out, seen = forward_recording(model, x, record)
    F.cross_entropy(out, y).backward()
    opt.step()
    return seen


def assert_same(model, ref, opt, ref_opt, what):
    for (k, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{what}: {k}: {m}")
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        for key, v in opt.state.get(p, {}).items():
            torch.testing.assert_close(v, ref_opt.state[q][key], rtol=1e-5, atol=1e-6,
                                       msg=lambda m, key=key: f"{what}: optimizer {key}: {m}")


CASES = [
    ("mlp", "sgd", "contribution", True), ("mlp", "adam", "adaptable_contribution", True),
    ("mlp", "sgd", "adaptable_contribution", False), ("cnn", "sgd", "contribution", True),
    ("cnn", "adam", "adaptable_contribution", True),
]


@pytest.mark.parametrize("arch,optimizer,utility,compensate", CASES)
def test_cbp_matches_the_rule_step_by_step(arch, optimizer, utility, compensate):
    build, groups, pairs, size = (mlp, MLP_GROUPS, MLP_PAIRS, 4) if arch == "mlp" else \
        (small_cnn, CNN_GROUPS, CNN_PAIRS, 8)
    model, ref = build(), build()
    spec = f"cbp:replacement_rate=0.15,maturity=4,decay=0.9,utility={utility},compensate={str(compensate).lower()}"
    reinit = Reinitializer(model, spec, rounds=1, groups=groups, seed=SEED)
    oracle = Oracle(pairs, 0.15, 4, 0.9, utility, compensate)
    opt, ref_opt = make_optimizer(model, optimizer), make_optimizer(ref, optimizer)
    replaced = 0
    for step, (x, y) in enumerate(batches(30, size), start=1):
        train_step(model, opt, x, y)
        reinit.after_step(0, step, opt)
        seen = train_step(ref, ref_opt, x, y, record={n for _, n, _, _ in pairs})
        chosen = oracle.step(ref, seen, ref_opt, 0, step)
        replaced += sum(len(c[0]) for c in chosen.values())
        assert_same(model, ref, opt, ref_opt, f"step {step}")
        for name, _, _, _ in pairs:
            assert torch.equal(reinit.method.layers[name].age.cpu(), oracle.state[name]["age"]), (step, name)
    assert replaced >= 20  # the replacements happened: the comparison is not vacuous
    assert reinit.in_round_log[0]["events"] > 0


def one_step_from(model, spec, groups, layer, age, util, owed):
    """A CBP Reinitializer whose layer `layer` starts from the given ages, utilities and debt (means
    0), after one SGD step on one batch: (reinit, the step's event record or None)."""
    reinit = Reinitializer(model, spec, rounds=1, groups=groups, seed=SEED)
    reinit.method.load_state_dict({"layers": {layer: {"age": age, "util": util, "mean": torch.zeros(len(age)),
                                                      "owed": owed}}, "replaced_total": 0})
    opt = make_optimizer(model, "sgd")
    x, y = batches(1)[0]
    train_step(model, opt, x, y)
    return reinit, reinit.after_step(0, 1, opt)


def test_cbp_ranks_by_the_bias_corrected_utility():
    """Unit 0 is old with utility 0.3; unit 1 matured 2 steps ago with utility 0.2, small only because
    its average has few terms (corrected: ~0.4). The step owes one unit: the corrected ranking replaces
    unit 0, the raw one would replace unit 1. The other units' utilities are far above both."""
    age = torch.full((12,), 1000, dtype=torch.long)
    age[1] = 5
    util = torch.full((12,), 10.0)
    util[0], util[1] = 0.3, 0.2
    reinit, record = one_step_from(mlp(), "cbp:replacement_rate=0.001,maturity=4,decay=0.9", MLP_GROUPS, "1", age,
                                   util, 0.999)
    assert "1 units replaced (1 1)" in record["event"]
    ages = reinit.method.layers["1"].age
    assert ages[0] == 0 and ages[1] == 6 and torch.all(ages[2:] == 1001)


def test_cbp_breaks_ties_among_equal_utilities_by_unit_order():
    """128 silent units (activation 0, so every utility stays 0) all mature, 6.4 owed: the first six
    units are replaced. An unstable sort (torch's, above a few dozen elements) picks others."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 4))
    with torch.no_grad():
        model[1].bias.fill_(-1e3)
    reinit, _ = one_step_from(model, "cbp:replacement_rate=0.05,maturity=4,utility=contribution",
                              {"stem": ["1"], "head": ["3"]}, "1", torch.full((128,), 1000), torch.zeros(128), 0.0)
    assert (reinit.method.layers["1"].age == 0).nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]


def test_cbp_a_single_mature_unit_owes_its_share():
    """One unit of 12 is mature and half a unit is owed already: this step owes 0.5 more, so the
    mature unit is replaced (ages count this step: 1001 and 1)."""
    age = torch.zeros(12, dtype=torch.long)
    age[7] = 1000
    reinit, record = one_step_from(mlp(), "cbp:replacement_rate=0.5,maturity=4", MLP_GROUPS, "1", age,
                                   torch.ones(12), 0.5)
    assert "1 units replaced (1 1)" in record["event"]
    assert reinit.method.layers["1"].age[7] == 0 and reinit.method.layers["1"].owed == 0.0


@pytest.mark.parametrize("maturity", [6, 11])
def test_cbp_owes_nothing_before_the_first_unit_matures(maturity):
    """No burst at the first maturity: with 12 units and rate 0.1, the first mature step owes 1.2
    units, so exactly one is replaced (a debt grown from step 1 would replace them all)."""
    model = mlp()
    reinit = Reinitializer(model, f"cbp:replacement_rate=0.1,maturity={maturity}", rounds=1, groups=MLP_GROUPS,
                           seed=SEED)
    opt = make_optimizer(model, "sgd")
    counts, owed = [], []
    for step, (x, y) in enumerate(batches(maturity + 3), start=1):
        train_step(model, opt, x, y)
        record = reinit.after_step(0, step, opt)
        counts.append(0 if record is None else int(record["event"].split(": ")[1].split()[0]))
        owed.append(reinit.method.layers["1"].owed)
    # layer "1" has 12 units, layer "3" 10: at the first mature step 1.2 and 1.0 units are owed
    assert counts[:maturity] == [0] * maturity and owed[:maturity] == [0.0] * maturity
    assert counts[maturity] == 2
    assert owed[maturity] == pytest.approx(0.2)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cbp_clears_the_optimizer_state_of_replaced_slices_only(optimizer):
    model = small_cnn()
    reinit = Reinitializer(model, "cbp:replacement_rate=0.2,maturity=2", rounds=1, groups=CNN_GROUPS, seed=SEED)
    opt = make_optimizer(model, optimizer)
    keys = ("momentum_buffer",) if optimizer == "sgd" else ("exp_avg", "exp_avg_sq")
    checked = 0
    for step, (x, y) in enumerate(batches(8, 8), start=1):
        train_step(model, opt, x, y)
        ages = {n: st.age.clone() for n, st in reinit.method.layers.items()}
        reinit.after_step(0, step, opt)
        for n, age in ages.items():
            new = reinit.method.layers[n].age
            units = ((new == 0) & (age + 1 > 0)).nonzero().flatten()
            if not len(units):
                continue
            checked += 1
            nxt = "4" if n == "0" else "7"
            cols = units if n == "0" else torch.cat([torch.arange(u * 16, (u + 1) * 16) for u in units.tolist()])
            layer, nxt_w = model.get_submodule(n).weight, model.get_submodule(nxt).weight
            for key in keys:
                assert torch.all(opt.state[layer][key][units] == 0), (step, n, key)
                assert torch.all(opt.state[nxt_w][key][:, cols] == 0), (step, n, key)
                assert torch.count_nonzero(opt.state[layer][key]) > 0, "only the replaced slices are cleared"
            if n == "0":
                for p in (model[1].weight, model[1].bias):
                    assert torch.all(opt.state[p][keys[0]][units] == 0)
    assert checked >= 3


def test_cbp_resets_the_replaced_channels_batchnorm_statistics_and_zeroes_their_outgoing_weights():
    model = small_cnn()
    reinit = Reinitializer(model, "cbp:replacement_rate=0.3,maturity=1", rounds=1, groups=CNN_GROUPS, seed=SEED)
    opt = make_optimizer(model, "sgd")
    for step, (x, y) in enumerate(batches(4, 8), start=1):
        train_step(model, opt, x, y)
        reinit.after_step(0, step, opt)
    replaced = (reinit.method.layers["0"].age == 0).nonzero().flatten()
    assert len(replaced)
    bn = model[1]
    assert torch.all(bn.running_mean[replaced] == 0) and torch.all(bn.running_var[replaced] == 1)
    assert torch.all(bn.weight[replaced] == 1) and torch.all(bn.bias[replaced] == 0)
    rows = reinit.method.layers["4"].age != 0  # a row replaced at the same step is re-drawn whole
    assert torch.all(model[4].weight[rows][:, replaced] == 0)
    kept = [i for i in range(6) if i not in replaced.tolist()]
    assert torch.all(bn.running_var[kept] != 1)


def test_cbp_replaces_nothing_with_its_defaults_in_a_short_run_and_says_so():
    model = mlp()
    reinit = Reinitializer(model, "cbp", rounds=1, groups=MLP_GROUPS, seed=SEED)
    opt = make_optimizer(model, "sgd")
    for step, (x, y) in enumerate(batches(5), start=1):
        train_step(model, opt, x, y)
        assert reinit.after_step(0, step, opt) is None
    assert "0 units replaced so far in 2 unit layers" in reinit.reset(1)["event"]


class Residual(nn.Module):
    """A torchvision-style block: its layers are attributes used by its own forward()."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu, self.conv2 = nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc((x + self.conv2(self.relu(self.conv1(x)))).mean((2, 3)))


@pytest.mark.parametrize("method", ["cbp", "snr"])
def test_a_model_without_unit_layers_is_refused_in_one_line(method):
    with pytest.raises(UserError) as e:
        Reinitializer(Residual(), method, rounds=1, groups={"stem": ["conv1", "conv2"], "head": ["fc"]})
    assert "\n" not in str(e.value) and "nn.Sequential" in str(e.value) and method in str(e.value)


def test_evaluation_and_no_grad_passes_are_not_taken_for_training():
    model = mlp()
    reinit = Reinitializer(model, "cbp:replacement_rate=0.5,maturity=0", rounds=1, groups=MLP_GROUPS, seed=SEED)
    x, y = batches(1)[0]
    model.eval()
    model(x)
    model.train()
    with torch.no_grad():
        model(x)
    assert reinit.after_step(0, 1, None) is None and not reinit.method.layers
    copy.deepcopy(model)(x)  # a copy's training pass feeds the original's tap too; nothing breaks


# Unit discovery on models the registry does not have: which layers are unit layers, which norm layers
# follow their units, which layer receives them and how many of its input columns each unit feeds.

class Two(nn.Module):
    """A model with its own forward() over two Sequential parts: each part is searched on its own."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))

    def forward(self, x):
        return self.b(self.a(x))


class Wrapped(nn.Module):
    """A Sequential inside a module with its own forward(): what that forward() does is not known."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6))

    def forward(self, x):
        return self.body(x) * 2


_shared = nn.Linear(4, 4)


def _conv_then(*rest):
    return nn.Sequential(nn.Conv2d(1, 4, 3), *rest)


DISCOVERY = {
    "linear, LayerNorm of its width": (
        nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Dropout(), nn.Linear(6, 2)),
        [("0", ["1"], "4", 1)]),
    "conv, GroupNorm of its channels": (
        _conv_then(nn.GroupNorm(2, 4), nn.SiLU(), nn.AvgPool2d(2), nn.Conv2d(4, 3, 1)),
        [("0", ["1"], "4", 1)]),
    "conv, BatchNorm, flatten, linear": (
        _conv_then(nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2)),
        [("0", ["1"], "4", 36)]),
    "a LayerNorm of another width ends the run": (
        nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(3), nn.Linear(6, 2)), []),
    "a GroupNorm after a linear layer ends the run": (
        nn.Sequential(nn.Linear(4, 8), nn.GroupNorm(2, 8), nn.Linear(8, 2)), []),
    "a LayerNorm over a conv's channels and positions ends the run": (
        _conv_then(nn.LayerNorm([4, 6, 6]), nn.Conv2d(4, 3, 1)), []),
    "a module that mixes units ends the run, the next run starts after it": (
        nn.Sequential(nn.Linear(4, 6), nn.Softmax(1), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)),
        [("2", [], "4", 1)]),
    "a shared layer is no unit layer and no next layer": (
        nn.Sequential(_shared, nn.ReLU(), _shared, nn.ReLU(), nn.Linear(4, 2)), []),
    "a layer whose next layer is shared": (
        nn.Sequential(nn.Linear(4, 4), nn.ReLU(), _shared, nn.ReLU(), _shared, nn.ReLU(), nn.Linear(4, 2)), []),
    "a layer inside a module with its own forward() does not reach the layers after that module": (
        nn.Sequential(Wrapped(), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), [("2", [], "4", 1)]),
    "Sequential parts of a model with its own forward(), named from the model": (
        Two(), [("b.0", [], "b.2", 1)]),
    "a grouped next conv": (_conv_then(nn.ReLU(), nn.Conv2d(4, 4, 1, groups=2)), []),
    "a next conv of another dimension": (nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)), []),
    "a next conv after a flatten": (_conv_then(nn.Flatten(), nn.Conv2d(4, 2, 1)), []),
    "a linear layer on a conv's output without a flatten": (_conv_then(nn.ReLU(), nn.Linear(4, 2)), []),
    "a linear layer of another input width": (nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(5, 2)), []),
    "a flatten into a width that is no multiple of the channels": (
        _conv_then(nn.Flatten(), nn.Linear(10, 2)), []),
}


@pytest.mark.parametrize("case", DISCOVERY)
def test_unit_discovery(case):
    model, expected = DISCOVERY[case]
    found = [(u.name, u.norms, u.next_name, u.spread) for u in unit_layers(model)]
    assert found == expected


def test_the_refusal_of_a_model_without_unit_layers_says_what_a_unit_layer_is():
    with pytest.raises(UserError) as e:
        require_units(nn.Sequential(nn.Linear(4, 2)), "snr")
    assert str(e.value) == (
        "method 'snr' needs unit layers and this model has none: a conv or linear layer whose output reaches "
        "the next conv or linear layer inside one nn.Sequential, through norm, activation, pooling, dropout or "
        "flatten modules only (a module with its own forward() is opaque)")


def test_attached_to_another_model_the_method_no_longer_watches_the_first():
    first, second = mlp(), mlp()
    reinit = Reinitializer(first, "cbp", rounds=1, groups=MLP_GROUPS, seed=SEED)
    reinit.method.attach(second, reinit.groups)
    x = batches(1)[0][0]
    first(x)
    assert reinit.method.tap.take() == {}
    second(x)
    assert sorted(reinit.method.tap.take()) == ["1", "3"]
