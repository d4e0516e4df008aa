"""Hare & Tortoise and the periodic options of fc, sp and dnr, each against its rule written out here
on the same weights and re-drawn numbers; and the plasticity methods in the training loop, on the
registry cnn and on an MLP a user builds."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import synthetic_bundle
from test_core_reset import trained_model

from reinitlab import Reinitializer, TrainConfig
from reinitlab.core.reset import fresh_modules, fresh_state
from reinitlab.models import build_model
from reinitlab.train.loop import run_keeping_engine
from reinitlab.util.seeding import derive

SEED = 9


def cnn():
    torch.manual_seed(0)
    return build_model("cnn", 1, 5, width=0.25, resolution=16)


def data(n=6, batch=20):
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(batch, 1, 16, 16, generator=g), torch.randint(0, 5, (batch,), generator=g)) for _ in range(n)]


def step(model, opt, x, y):
    model.train()
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


# ---- Hare & Tortoise -------------------------------------------------------------------------------
@pytest.mark.parametrize("from_first,every,resets_after", [(True, 2, [1, 3]), (False, 2, [2]), (True, 3, [1])])
def test_hare_follows_a_moving_average_and_takes_it_on_schedule(from_first, every, resets_after):
    model = cnn()
    floats = lambda m: {n: t for n, t in m.state_dict().items() if t.is_floating_point()}  # noqa: E731
    tortoise = {n: t.clone() for n, t in floats(model).items()}  # starts as the initial weights
    reinit = Reinitializer(model, f"hare:momentum=0.9,every_epochs={every},from_first={str(from_first).lower()}", rounds=1,
                           seed=SEED)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches, done = data(), []
    for epoch in range(1, 4):
        for i, (x, y) in enumerate(batches[:3]):
            step(model, opt, x, y)
            reinit.after_step(0, (epoch - 1) * 3 + i + 1, opt)
            for n, t in floats(model).items():
                tortoise[n] = 0.9 * tortoise[n] + 0.1 * t
        momentum = {p: opt.state[p]["momentum_buffer"].clone() for p in model.parameters()}
        counts = model.stem[1].num_batches_tracked.clone()
        if reinit.end_epoch(0, epoch, optimizer=opt) is not None:
            done.append(epoch)
            for n, t in floats(model).items():
                torch.testing.assert_close(t, tortoise[n], rtol=1e-5, atol=1e-7)
                assert torch.equal(t, reinit.method.tortoise[n]), n  # exactly its own average
            assert torch.equal(model.stem[1].num_batches_tracked, counts)  # integer buffers are not averaged
            assert all(torch.equal(opt.state[p]["momentum_buffer"], m) for p, m in momentum.items())
    assert done == resets_after


def test_hare_changes_nothing_at_a_round_start_and_keeps_its_tortoise_across_rounds():
    model = cnn()
    reinit = Reinitializer(model, "hare", rounds=2, seed=SEED)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data(1)[0]
    step(model, opt, x, y)
    reinit.after_step(0, 1, opt)
    before, tortoise = copy.deepcopy(model.state_dict()), {n: t.clone() for n, t in reinit.method.tortoise.items()}
    reinit.reset(1)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(t, tortoise[n]) for n, t in reinit.method.tortoise.items())


# ---- fc every N steps ------------------------------------------------------------------------------
def test_fc_every_redraws_the_head_at_every_nth_step_and_clears_its_momentum():
    model = cnn()
    reinit = Reinitializer(model, "fc:every=2", rounds=1, seed=SEED)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    head = [n for n in reinit.groups.params["head"]]
    for s, (x, y) in enumerate(data(5), start=1):
        step(model, opt, x, y)
        before = copy.deepcopy(model.state_dict())
        record = reinit.after_step(0, s, opt)
        assert (record is not None) == (s % 2 == 0)
        state = model.state_dict()
        if record is None:
            continue
        drawn = fresh_modules(model, head, derive(SEED, "fresh", 0, s))
        for n, p in model.named_parameters():
            if n in head:
                assert torch.equal(p, drawn[n]) and torch.all(opt.state[p]["momentum_buffer"] == 0), n
            else:
                assert torch.equal(state[n], before[n]), n


# ---- sp graded by depth (BRB's soft reset) -----------------------------------------------------
def test_sp_step_grades_shrink_and_perturb_by_the_depth_of_each_group():
    """BRB's alpha 0.7 and step 0.05: the head interpolates with alpha 0.7, the group below with 0.75,
    ..., the stem (4 below the head) with 0.9: w = a*w + (1-a)*s."""
    model = cnn()
    reinit = Reinitializer(model, "sp:shrink=0.7,perturb=0.3,step=0.05", rounds=1, seed=SEED)
    x, y = data(1)[0]
    step(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    source = fresh_state(model, derive(SEED, "fresh", 1))
    reinit.reset(1)
    alphas = {"head": 0.7, "block3": 0.75, "block2": 0.8, "block1": 0.85, "stem": 0.9}
    for g, names in reinit.groups.params.items():
        a = alphas[g]
        for n in names:
            want = a * before[n] + (1 - a) * source[n]
            torch.testing.assert_close(dict(model.named_parameters())[n], want, rtol=1e-6, atol=1e-7, msg=n)


def test_sp_step_leaves_a_group_alone_once_its_shrink_reaches_1():
    model = cnn()
    reinit = Reinitializer(model, "sp:shrink=0.7,perturb=0.3,step=0.2", rounds=1, seed=SEED)
    before = copy.deepcopy(model.state_dict())
    reinit.reset(1)
    after = model.state_dict()
    # 0.7 + 2*0.2 >= 1: block2, block1 and the stem keep their values
    for g in ("stem", "block1", "block2"):
        assert all(torch.equal(after[n], before[n]) for n in reinit.groups.params[g]), g
    assert not all(torch.equal(after[n], before[n]) for n in reinit.groups.params["block3"])


# ---- dnr with LURE's global threshold --------------------------------------------------------------
def test_dnr_global_redraws_what_lures_snip_threshold_selects():
    model = cnn()
    batches = data(2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, y in batches:
        step(model, opt, x, y)
    # the oracle, from LURE's rule: |w| * sum over batches of |grad|, one threshold at the
    # int(0.2 * n)-th smallest saliency, everything at or below it re-drawn
    probe = copy.deepcopy(model).train()
    grads = {n: torch.zeros_like(p) for n, p in probe.named_parameters()}
    for x, y in batches:
        probe.zero_grad()
        F.cross_entropy(probe(x), y).backward()
        for n, p in probe.named_parameters():
            grads[n] += p.grad.abs()
    saliency = {n: (p.detach() * grads[n]).abs() for n, p in probe.named_parameters()}
    flat = torch.cat([s.flatten() for s in saliency.values()])
    threshold = flat.kthvalue(int(0.2 * flat.numel())).values
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    source = fresh_state(model, derive(SEED, "fresh", 1))
    reinit = Reinitializer(model, "dnr:scope=global", rounds=1, seed=SEED)
    reinit.reset(1, data=batches)
    redrawn = 0
    for n, p in model.named_parameters():
        low = saliency[n] <= threshold
        redrawn += int(low.sum())
        assert torch.equal(p[low], source[n][low]) and torch.equal(p[~low], before[n][~low]), n
    assert redrawn >= int(0.2 * flat.numel())
    assert math.isclose(redrawn / flat.numel(), 0.2, abs_tol=0.05)


def test_dnr_tensor_scope_is_unchanged_by_the_global_option():
    """scope=tensor keeps exactly round(keep * n) of every tensor (the per-tensor rule)."""
    model = cnn()
    reinit = Reinitializer(model, "dnr", rounds=1, seed=SEED)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    source = fresh_state(model, derive(SEED, "fresh", 1))
    reinit.reset(1, data=data(2))
    for n, p in model.named_parameters():
        kept = (p == before[n]) & (p != source[n])
        assert abs(int(kept.sum()) - round(0.8 * p.numel())) <= int((before[n] == source[n]).sum()), n


# ---- in the training loop --------------------------------------------------------------------------
TINY = dict(width=0.25, epochs=2, rounds=1, batch_size=16, eval_batch_size=64, threads=1)


@pytest.mark.parametrize("spec,acts", [("cbp:replacement_rate=0.05,maturity=3", True), ("snr:tau_init=16", None),
                                       ("hare:every_epochs=1", True)])
def test_plasticity_methods_train_the_registry_cnn(spec, acts):
    bundle = synthetic_bundle(n_train=64, n_test=16)
    result, eng = run_keeping_engine(TrainConfig(method=spec, **TINY), out=None, progress=False, bundle=bundle)
    assert result["status"] == "finished" and result["rounds"] == 1 and len(result["per_round"]) == 2
    events = sum(r["events"] for r in eng.reinit.in_round_log)
    if acts is not None:
        assert (events > 0) == acts, spec
    assert "so far" in result["per_round"][1]["reset"]["event"] or spec.startswith("hare")


def test_cbp_with_its_defaults_is_refused_where_no_unit_can_mature():
    """maturity 1000 on a run of 12 steps: refused before training, naming the setting (not a run
    that says nothing about a method that never acted)."""
    from reinitlab.util.errors import UserError
    with pytest.raises(UserError, match="method 'cbp' never acts in this run: .*maturity=1000"):
        run_keeping_engine(TrainConfig(method="cbp", **TINY), out=None, progress=False, bundle=synthetic_bundle(n_train=64))


@pytest.mark.parametrize("spec", ["cbp:replacement_rate=0.1,maturity=2", "snr:tau_init=16,adapt_every=2",
                                  "hare:momentum=0.8,every_epochs=1"])
def test_plasticity_methods_on_a_users_mlp(spec):
    """A user's nn.Sequential MLP with named groups, Adam, a hand-written loop through Reinitializer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 4))
    groups = {"stem": ["1"], "block1": ["3"], "head": ["5"]}
    reinit = Reinitializer(model, spec, rounds=1, groups=groups, seed=SEED)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)
    with torch.no_grad():
        model[3].bias[:8] = -30.0  # units that never fire, for snr
    for r in range(2):
        if r:
            reinit.reset(r)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(1, 3):
            for i in range(4):
                step(model, opt, x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16])
                reinit.after_step(r, (epoch - 1) * 4 + i + 1, opt)
            reinit.end_epoch(r, epoch, last=epoch == 2, optimizer=opt)
    assert sum(log["events"] for log in reinit.in_round_log) > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_hare_at_round_start_resets_one_epoch_tasks_and_is_refused_without_it():
    """Tasks of one epoch (permuted): the trainer's counter would reset after each task's only epoch,
    which is a round's last (no in-round event there); at_round_start puts that reset at the next
    stage's start. Without it hare never acts on such a run, and is refused."""
    from reinitlab.util.errors import UserError
    bundle = synthetic_bundle(n_train=64, n_test=16)
    cfg = dict(TINY, epochs=1, rounds=2, protocol="permuted")
    result = run_keeping_engine(TrainConfig(method="hare:momentum=0.9,at_round_start=true", **cfg), out=None,
                                progress=False, bundle=bundle)[0]
    assert [r["reset"]["event"] if r["reset"] else None for r in result["per_round"]] == [
        None, "hare set to the tortoise at the round start", "hare set to the tortoise at the round start"]
    with pytest.raises(UserError, match="method 'hare' never acts in this run"):
        run_keeping_engine(TrainConfig(method="hare", **cfg), out=None, progress=False, bundle=bundle)


def test_fc_every_epochs_redraws_the_head_after_every_nth_epoch_only():
    model, _, batches = trained_model()
    reinit = Reinitializer(model, "fc:every_epochs=2", rounds=1, seed=SEED)
    head = set(reinit.groups.params["head"])
    for epoch in (1, 2, 3, 4):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        out = reinit.end_epoch(0, epoch, data=batches)
        changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
        if epoch % 2:
            assert out is None and not changed
        else:
            assert out["event"] == f"reset head after epoch {epoch}" and changed == head, epoch
    assert [log["events"] for log in reinit.in_round_log] == [2]
    steps = Reinitializer(model, "fc:every=2", rounds=1, seed=SEED)
    assert steps.after_step(0, 1, data=batches) is None
    assert steps.after_step(0, 2, data=batches)["event"] == "reset head at step 2"


def test_dnr_global_redraws_the_single_lowest_score_when_the_budget_is_one_element():
    model, _, batches = trained_model()
    n = sum(p.numel() for p in model.parameters() if p.dim() > 1)
    before = {k: v.clone() for k, v in model.named_parameters()}
    reinit = Reinitializer(model, f"dnr:scope=global,keep={1 - 1.5 / n!r}", rounds=1, seed=SEED)
    record = reinit.reset(1, data=batches)
    changed = sum(int((before[k] != v).sum()) for k, v in model.named_parameters())
    assert changed == 1, record["event"]


def test_sp_fresh_buffers_leave_lws_frozen_standardization_alone():
    """A model carrying LW's standardization deep inside (layer1.1, torchvision's naming) and
    trained running statistics: sp:buffers=fresh re-draws the statistics, not the standardization."""
    from test_core_groups import TorchvisionStyle
    torch.manual_seed(0)
    model = TorchvisionStyle()
    x, y = torch.randn(8, 1, 16, 16), torch.zeros(8, dtype=torch.long)
    Reinitializer(model, "lw", rounds=3, seed=SEED).reset(2, data=[(x, y)])
    model.train()
    model(x)  # running statistics move away from their fresh values
    before = {n: b.clone() for n, b in model.named_buffers()}
    Reinitializer(model, "sp:buffers=fresh", rounds=3, seed=SEED).reset(1)
    changed = {n for n, b in model.named_buffers() if not torch.equal(b, before[n])}
    assert {"layer1.1.reinit_std_mean", "layer1.1.reinit_std_std"} <= before.keys()
    assert changed and not any("reinit_" in n for n in changed), changed


def test_hare_averages_the_models_statistics_but_not_lws_standardization():
    from test_core_groups import TorchvisionStyle
    torch.manual_seed(0)
    model = TorchvisionStyle()
    x, y = torch.randn(8, 1, 16, 16), torch.zeros(8, dtype=torch.long)
    Reinitializer(model, "lw", rounds=3, seed=SEED).reset(2, data=[(x, y)])  # layer1.1.reinit_std_*
    hare = Reinitializer(model, "hare", rounds=1, seed=SEED)
    floats = {n for n, b in model.named_buffers() if b.is_floating_point()}
    assert {"layer1.1.reinit_std_mean", "layer1.1.reinit_std_std"} <= floats
    assert {n for n in floats if n in hare.method.tortoise} == {n for n in floats if "reinit_" not in n}
