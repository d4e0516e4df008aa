"""Self-Normalized Resets against an oracle written here from the rule (the SNR code's ages, gap
histogram and threshold update, as snr.py's docstring states it), on the same weights, batches and
re-drawn numbers, step after step, with SGD momentum and with Adam. Some units are made to fire
rarely (a negative bias) and some never (a strongly negative one), so units are reset, thresholds
adapt both ways and reset units come back."""
import copy
from collections import Counter

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_methods_cbp import (
    CNN_GROUPS,
    CNN_PAIRS,
    MLP_GROUPS,
    MLP_PAIRS,
    SEED,
    assert_same,
    batches,
    forward_recording,
    make_optimizer,
    mlp,
    replace_units,
    small_cnn,
    train_step,
)
from test_methods_registry import check_event

from reinitlab import Reinitializer
from reinitlab.methods import METHODS, ResetContext
from reinitlab.methods.snr import _Layer


def quiet_mlp() -> nn.Sequential:
    model = mlp()
    with torch.no_grad():
        model[1].bias[:4] = -1.2  # fire in some batches only
        model[1].bias[4:6] = -20.0  # never fire until reset
        model[3].bias[:3] = -1.0
    return model


def quiet_cnn() -> nn.Sequential:
    model = small_cnn()
    with torch.no_grad():
        model[1].bias[:2] = -20.0  # BatchNorm shift: channels 0 and 1 never fire until reset
        model[4].bias[:2] = -3.0
    return model


class Oracle:
    """SNR from the rule, unit by unit, ages and gaps in samples (the SNR code's histogram)."""

    def __init__(self, pairs, percentile, expansion, adapt_every, tau_init, tau_max):
        self.pairs, self.p, self.expansion = pairs, percentile, expansion
        self.adapt_every, self.tau_init, self.tau_max = adapt_every, tau_init, tau_max
        self.units, self.steps = {}, 0

    def record(self, unit, age):
        if age <= self.tau_max:
            unit["gaps"][age] += 1

    @torch.no_grad()
    def step(self, model, seen, opt, round_, step):
        self.steps += 1
        chosen = {}
        for name, nxt_name, _, _ in self.pairs:
            h = seen[nxt_name]
            batch = h.shape[0]
            width = model.get_submodule(name).weight.shape[0]
            per_unit = h.reshape(batch, width, -1)  # a conv's positions, or a unit's flattened columns
            units = self.units.setdefault(name, [{"age": 0, "tau": self.tau_init, "gaps": Counter()}
                                                 for _ in range(width)])
            reset = []
            for i, unit in enumerate(units):
                if bool((per_unit[:, i] > 0).any()):
                    self.record(unit, unit["age"])
                    unit["age"] = 0
                else:
                    unit["age"] += batch
                if unit["age"] >= unit["tau"]:
                    self.record(unit, unit["age"])
                    unit["age"] = 0
                    reset.append(i)
                unit["batch"] = batch
            if reset:
                chosen[name] = (reset, None)
        if self.steps % self.adapt_every == 0:
            for units in self.units.values():
                for unit in units:
                    gaps = sorted((g, c) for g, c in unit["gaps"].items() if g >= 1)
                    total, q, run = sum(c for _, c in gaps), 1, 0
                    for g, c in gaps:
                        run += c
                        if run / total >= self.p:
                            q = g
                            break
                    tau = q if q < unit["tau"] else int(unit["tau"] * self.expansion)
                    unit["tau"] = min(max(tau, unit["batch"]), self.tau_max)
                    unit["gaps"] = Counter()
        replace_units(model, self.pairs, chosen, opt, round_, step, compensate=False)
        return chosen


CASES = [("mlp", "sgd", 0.9), ("mlp", "adam", 0.9), ("mlp", "sgd", 0.5), ("cnn", "sgd", 0.9), ("cnn", "adam", 0.75)]


@pytest.mark.parametrize("arch,optimizer,percentile", CASES)
def test_snr_matches_the_rule_step_by_step(arch, optimizer, percentile):
    build, groups, pairs, size, batch = (quiet_mlp, MLP_GROUPS, MLP_PAIRS, 4, 8) if arch == "mlp" else \
        (quiet_cnn, CNN_GROUPS, CNN_PAIRS, 8, 4)
    model, ref = build(), build()
    options = dict(percentile=percentile, expansion=1.5, adapt_every=5, tau_init=3 * batch, tau_max=25 * batch)
    reinit = Reinitializer(model, "snr:" + ",".join(f"{k}={v}" for k, v in options.items()), rounds=1,
                           groups=groups, seed=SEED)
    oracle = Oracle(pairs, **options)
    opt, ref_opt = make_optimizer(model, optimizer), make_optimizer(ref, optimizer)
    resets = 0
    taus = set()
    for step, (x, y) in enumerate(batches(40, size, batch), start=1):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        reinit.after_step(0, step, opt)
        ref.train()
        ref_opt.zero_grad()
        out, seen = forward_recording(ref, x, {n for _, n, _, _ in pairs})
        F.cross_entropy(out, y).backward()
        ref_opt.step()
        resets += sum(len(c[0]) for c in oracle.step(ref, seen, ref_opt, 0, step).values())
        assert_same(model, ref, opt, ref_opt, f"step {step}")
        for name, _, _, _ in pairs:
            st = reinit.method.layers[name]
            assert st.age.tolist() == [u["age"] for u in oracle.units[name]], (step, name)
            assert st.tau.tolist() == [u["tau"] for u in oracle.units[name]], (step, name)
            taus.update(st.tau.tolist())
    assert resets >= 4  # units were reset, and thresholds moved both ways: not a vacuous comparison
    assert min(taus) == batch and len(taus) >= 3


def test_snr_resets_a_dead_unit_and_it_fires_again():
    """Units 4 and 5 of the first layer never fire (bias -20): 8 samples per step, so they reach their
    threshold of 16 samples at step 2 and are reset (bias 0, a fresh row); afterwards they fire."""
    model = quiet_mlp()
    reinit = Reinitializer(model, "snr:tau_init=16,adapt_every=1000", rounds=1, groups=MLP_GROUPS, seed=SEED)
    opt = make_optimizer(model, "sgd")
    ages, biases = [], []
    for step, (x, y) in enumerate(batches(5, 4, 8), start=1):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        reinit.after_step(0, step, opt)
        ages.append(reinit.method.layers["1"].age[4:6].tolist())
        biases.append(model[1].bias[4:6].tolist())
    assert ages[0] == [8, 8] and max(biases[0]) < -19  # silent one batch, below the threshold
    assert ages[1] == [0, 0] and biases[1] == [0.0, 0.0]  # reset at 16 samples
    assert ages[2:] == [[0, 0]] * 3  # firing again
    assert torch.all(model[3].weight[:, 4:6] != 0)  # outgoing weights zeroed at the reset, learning since


def test_snr_reset_events_keep_the_registry_invariants():
    """The registry-wide property test cannot make units silent; here a few are, on the cnn's BatchNorm
    layers, and each event is checked the registry's way."""
    from reinitlab.core.groups import groups_of

    model = quiet_cnn()
    groups = groups_of(model, CNN_GROUPS)
    reinit = Reinitializer(model, "snr:tau_init=4,adapt_every=3", rounds=1, groups=groups, seed=SEED)
    opt = make_optimizer(model, "sgd")
    checked, statistics = 0, 0
    for step, (x, y) in enumerate(batches(6, 8, 4), start=1):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        ctx = ResetContext(model=model, groups=groups, round=0, rounds=1, init_norms=reinit.init_norms, seed=SEED,
                           batches=lambda: [], loss_fn=F.cross_entropy, step=step)
        event = reinit.method.step_event(ctx)
        if event is not None:
            statistics += len(event.buffer_actions)  # a reset BatchNorm channel's running statistics
            check_event(model, groups, event, reinit.source(event, 0, step=step), f"snr step {step}")
            checked += 1
    assert checked >= 1 and statistics >= 2


def test_snr_options_are_checked():
    with pytest.raises(Exception, match="tau_init=300"):
        METHODS["snr"](tau_init=300, tau_max=200)
    with pytest.raises(Exception, match="percentile"):
        METHODS["snr"](percentile=0.0)


def test_snr_state_survives_a_restart_bit_identically():
    """Ages, thresholds, histograms and the step count go through the checkpoint: stopping after 8
    steps (between two adaptations, gaps recorded) and going on from the saved state ends where one
    uninterrupted run ends. test_methods_resume kills real runs, but there no unit falls silent."""
    spec = "snr:percentile=0.75,expansion=1.5,adapt_every=5,tau_init=24,tau_max=200"

    def train(model, reinit, opt, steps):
        for step, (x, y) in steps:
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            reinit.after_step(0, step, opt)

    all_steps = list(enumerate(batches(30, 4, 8), start=1))
    ref = quiet_mlp()
    ref_reinit = Reinitializer(ref, spec, rounds=1, groups=MLP_GROUPS, seed=SEED)
    train(ref, ref_reinit, make_optimizer(ref, "sgd"), all_steps)
    model = quiet_mlp()
    reinit = Reinitializer(model, spec, rounds=1, groups=MLP_GROUPS, seed=SEED)
    opt = make_optimizer(model, "sgd")
    train(model, reinit, opt, all_steps[:8])
    saved = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict()),
             "reinit": copy.deepcopy(reinit.state_dict())}
    before = reinit.method.layers
    assert int(before["1"].hist[:, 1:].sum()) > 0  # gaps were recorded before the stop
    model = quiet_mlp()
    reinit = Reinitializer(model, spec, rounds=1, groups=MLP_GROUPS, seed=SEED)
    reinit.load_state_dict(saved["reinit"])
    for name, st in before.items():
        got = reinit.method.layers[name]
        assert all(torch.equal(getattr(got, k), getattr(st, k)) for k in ("age", "tau", "hist")), name
        assert (got.bin, got.batch) == (st.bin, st.batch)
    model.load_state_dict(saved["model"])
    opt = make_optimizer(model, "sgd")
    opt.load_state_dict(saved["opt"])
    train(model, reinit, opt, all_steps[8:])
    assert ref_reinit.method.reset_total >= 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True))
    assert reinit.method.reset_total == ref_reinit.method.reset_total


def test_snr_histogram_has_a_bin_per_batch_up_to_tau_max():
    model = mlp()
    reinit = Reinitializer(model, "snr:tau_init=50,tau_max=100", rounds=1, groups=MLP_GROUPS, seed=SEED)
    opt = make_optimizer(model, "sgd")
    x, y = batches(1)[0]  # 32 samples: gaps of 0 and of 1-4 batches (up to 128 > 100 samples)
    train_step(model, opt, x, y)
    reinit.after_step(0, 1, opt)
    st = reinit.method.layers["1"]
    assert st.hist.shape == (12, 5) and st.bin == 32 and st.batch == 32


def test_snr_records_each_gap_once_in_the_bin_of_its_batches():
    """Bins one batch (10 samples) wide: bin k holds gaps in (10(k-1), 10k]; a gap of exactly tau_max
    is recorded in the last bin, a longer one not at all, an unmarked unit not at all."""
    snr = METHODS["snr"](tau_init=50, tau_max=50)
    ages = torch.tensor([0, 1, 10, 11, 20, 50, 51, 5])
    st = _Layer(ages.clone(), torch.full((8,), 50), torch.zeros(8, 6, dtype=torch.long), bin=10, batch=10)
    marked = torch.tensor([True] * 7 + [False])
    snr._record(st, marked)
    snr._record(st, marked)
    expected = torch.zeros(8, 6, dtype=torch.long)
    for unit, k in enumerate([0, 1, 1, 2, 2, 5]):
        expected[unit, k] = 2
    assert torch.equal(st.hist, expected)


def test_snr_threshold_follows_the_percentile_within_one_batch_and_tau_max():
    snr = METHODS["snr"](percentile=0.99, expansion=2.0, tau_init=15000, tau_max=20000)
    hist = torch.zeros(4, 21, dtype=torch.long)
    hist[0, 20] = 5  # gaps of 20 batches: q = 20000 >= tau, so tau doubles, clipped at tau_max
    hist[1, 3] = 5  # q = 3000 < tau: tau falls to it
    hist[3, 1], hist[3, 10] = 99, 1  # 99% of the gaps within one batch
    st = _Layer(torch.zeros(4, dtype=torch.long), torch.full((4,), 15000), hist, bin=1000, batch=1000)
    snr._adapt(st)
    assert st.tau.tolist() == [20000, 3000, 1000, 1000]  # no gaps (unit 2): q is 1 sample, clipped to a batch
    assert not st.hist.any()
    one = _Layer(torch.zeros(1, dtype=torch.long), torch.full((1,), 5), torch.zeros(1, 3, dtype=torch.long), bin=1,
                 batch=1)
    snr._adapt(one)
    assert one.tau.tolist() == [1]  # batches of one sample: tau reaches 1
