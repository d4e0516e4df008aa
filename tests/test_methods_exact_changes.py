"""The later methods (fire, redo, dash, rewind, l2init, swr) and the re-draw sources: after each event
exactly the intended elements change, in exactly the intended way."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from test_core_reset import SEED, trained_model

from reinitlab import Reinitializer, make_method
from reinitlab.core.reset import fresh_state
from reinitlab.util.errors import UserError
from reinitlab.util.seeding import derive

BN_STEM = "stem.1"


def grads_over(model, batches):
    ref = copy.deepcopy(model).train()
    ref.zero_grad()
    for x, y in batches:
        F.cross_entropy(ref(x), y).backward()
    return {n: p.grad.detach().clone() for n, p in ref.named_parameters()}


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- fire ----------------------------------------------------------------------------------------
def fire_oracle(w: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """From the description, through the SVD: on X = M/||M||_F each Newton-Schulz step maps every
    singular value s to 1.5 s - 0.5 s^3 and keeps the singular vectors."""
    out, cin = w.shape[:2]
    slices = w.double().reshape(out, cin, -1)
    res = torch.empty_like(slices)
    for k in range(slices.shape[2]):
        m = slices[:, :, k]
        u, s, vh = torch.linalg.svd(m / m.norm(), full_matrices=False)
        for _ in range(iterations):
            s = 1.5 * s - 0.5 * s ** 3
        res[:, :, k] = u @ torch.diag(s) @ vh
    return (res * math.sqrt(out / cin) / slices.shape[2]).reshape(w.shape).float()


@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_fire_orthogonalizes_conv_and_linear_weights_and_touches_nothing_else(alpha):
    model, _, batches = trained_model()
    before = state(model)
    Reinitializer(model, f"fire:alpha={alpha}", rounds=2, seed=SEED).reset(1)
    after = state(model)
    weights = [n for n, p in model.named_parameters() if p.dim() >= 2]
    assert weights and "head.2.weight" in weights
    for n in weights:
        expect = alpha * fire_oracle(before[n]) + (1 - alpha) * before[n]
        assert torch.allclose(after[n], expect, atol=2e-5, rtol=1e-4), n
    for k in after:
        if k not in weights:
            assert torch.equal(after[k], before[k]), k


def test_fire_with_enough_iterations_reaches_the_scaled_isometry():
    from reinitlab.methods.fire import fire_target
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3)
    x = fire_target(w, iterations=60)
    for k in range(9):
        s = torch.linalg.svdvals(x.reshape(6, 4, 9)[:, :, k])
        assert torch.allclose(s, torch.full_like(s, math.sqrt(6 / 4) / 9), rtol=1e-4)


def test_fire_orthogonalizes_a_tiny_weight_as_it_does_its_multiple():
    from reinitlab.methods.fire import newton_schulz
    torch.manual_seed(0)
    m = torch.randn(6, 4)
    torch.testing.assert_close(newton_schulz(m * 1e-4, 10), newton_schulz(m, 10))
    torch.testing.assert_close(newton_schulz(m.T * 1e-4, 10), newton_schulz(m, 10).T)
    assert torch.equal(newton_schulz(torch.zeros(3, 3), 10), torch.zeros(3, 3))  # a zero slice stays zero


# ---- dash ----------------------------------------------------------------------------------------
def test_dash_shrinks_each_kernel_and_row_by_its_clamped_cosine():
    model, _, batches = trained_model()
    g = grads_over(model, batches)
    before = state(model)
    Reinitializer(model, "dash:lam=0.2", rounds=2, seed=SEED).reset(1, data=batches)
    after = state(model)
    shrunk = 0
    for n, p in model.named_parameters():
        if p.dim() == 4:
            for o in range(p.shape[0]):
                for i in range(p.shape[1]):
                    w, gi = before[n][o, i].flatten(), g[n][o, i].flatten()
                    c = F.cosine_similarity(w, -gi, dim=0).clamp(0.2, 1.0)
                    assert torch.allclose(after[n][o, i], c * before[n][o, i], atol=1e-6), (n, o, i)
                    shrunk += bool(c < 1)
        elif p.dim() == 2:
            for o in range(p.shape[0]):
                c = F.cosine_similarity(before[n][o], -g[n][o], dim=0).clamp(0.2, 1.0)
                assert torch.allclose(after[n][o], c * before[n][o], atol=1e-6)
        elif n == "head.2.bias":
            c = F.cosine_similarity(before[n], -g[n], dim=0).clamp(0.2, 1.0)
            assert torch.allclose(after[n], c * before[n], atol=1e-6)
        else:  # norm layers
            assert torch.equal(after[n], before[n]), n
    assert shrunk > 0
    for k in model.state_dict():
        if "running" in k or "num_batches" in k:
            assert torch.equal(after[k], before[k]), k


def test_a_reset_that_reads_gradients_leaves_the_models_own_gradients_as_they_were():
    model, _, batches = trained_model()
    mine = {n: torch.full_like(p, 0.5) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = mine[n].clone()
    Reinitializer(model, "dash", rounds=2, seed=SEED).reset(1, data=batches)
    assert all(torch.equal(p.grad, mine[n]) for n, p in model.named_parameters())


def test_dash_scales_each_kernel_of_a_1d_convolution():
    from reinitlab.methods.dash import dash_scale
    torch.manual_seed(0)
    w, g = torch.randn(3, 2, 5), torch.randn(3, 2, 5)
    scale = dash_scale(w, g, 0.1)
    assert scale.shape == (3, 2, 1)
    for o in range(3):
        for i in range(2):
            c = F.cosine_similarity(w[o, i], -g[o, i], dim=0).clamp(0.1, 1.0)
            assert torch.allclose(scale[o, i, 0], c)


# ---- redo ----------------------------------------------------------------------------------------
def test_redo_recycles_dormant_units_and_zeroes_their_outgoing_weights():
    model, _, batches = trained_model()
    dead, dead1 = [0, 2], [3]
    with torch.no_grad():
        model.stem[1].bias[dead] = -1e3  # these units never fire after the ReLU
        model.block1[1].bias[dead1] = -1e3
    before = state(model)
    fresh = fresh_state(model, derive(SEED, "fresh", 1))
    reinit = Reinitializer(model, "redo:tau=0.02", rounds=2, seed=SEED)
    record = reinit.reset(1, data=batches)
    after = state(model)
    live = [c for c in range(model.stem[0].weight.shape[0]) if c not in dead]
    for name in ("stem.0.weight", f"{BN_STEM}.weight", f"{BN_STEM}.bias"):
        assert torch.equal(after[name][dead], fresh[name][dead]), name
        assert torch.equal(after[name][live], before[name][live]), name
    w1 = "block1.0.weight"  # reads the stem's channels; its unit 3 is dormant itself
    assert torch.equal(after[w1][:, dead], torch.zeros_like(after[w1][:, dead]))  # outgoing: 0, also in row 3
    assert torch.equal(after[w1][dead1][:, live], fresh[w1][dead1][:, live])  # incoming of unit 3: re-drawn
    rows = [o for o in range(after[w1].shape[0]) if o not in dead1]
    assert torch.equal(after[w1][rows][:, live], before[w1][rows][:, live])
    assert torch.equal(after["block1.1.bias"][dead1], fresh["block1.1.bias"][dead1])
    w2 = "block2.0.weight"
    assert torch.equal(after[w2][:, dead1], torch.zeros_like(after[w2][:, dead1]))
    assert record["redrawn_fraction"]["stem"] > 0


def test_redo_in_round_every_n_steps_clears_the_momentum_of_what_it_replaced():
    model, _, batches = trained_model()
    with torch.no_grad():
        model.stem[1].bias[[1]] = -1e3
    reinit = Reinitializer(model, "redo:tau=0.02,every=3", rounds=1, seed=SEED)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = batches[0]
    for step in (1, 2, 3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        before = state(model)
        out = reinit.after_step(0, step, opt, data=batches)
        if step < 3:
            assert out is None and all(torch.equal(before[k], v) for k, v in state(model).items())
    assert out is not None and out["step"] == 3
    mom = opt.state[model.block1[0].weight]["momentum_buffer"]
    assert torch.equal(mom[:, 1], torch.zeros_like(mom[:, 1]))  # outgoing weights set to 0
    assert torch.equal(opt.state[model.stem[0].weight]["momentum_buffer"][1],
                       torch.zeros_like(model.stem[0].weight[1]))  # incoming re-drawn
    (log,) = reinit.in_round_log
    assert log["round"] == 0 and log["events"] == 1 and log["changed_elements"] >= log["replaced_elements"] > 0


def test_redo_finds_dormant_units_in_any_layer_below_the_logits():
    """Nothing dormant in the stem, dormant units in block2 and in block3, whose outgoing weights are
    the logits layer's columns: every layer is scanned, the last hidden one included."""
    model, _, batches = trained_model()
    dead2, dead3 = [1], [0, 3]
    with torch.no_grad():
        model.block2[1].bias[dead2] = -1e3
        model.block3[1].bias[dead3] = -1e3
    before = state(model)
    fresh = fresh_state(model, derive(SEED, "fresh", 1))
    record = Reinitializer(model, "redo:tau=0.02", rounds=2, seed=SEED).reset(1, data=batches)
    after = state(model)
    assert record["event"] == "redo tau 0.02: 3 dormant units"
    for layer, dead in (("block2", dead2), ("block3", dead3)):
        for name in (f"{layer}.1.weight", f"{layer}.1.bias"):
            assert torch.equal(after[name][dead], fresh[name][dead]), name
    assert torch.equal(after["block2.0.weight"][dead2], fresh["block2.0.weight"][dead2])
    w3, live2 = "block3.0.weight", [c for c in range(after["block3.0.weight"].shape[1]) if c not in dead2]
    assert torch.equal(after[w3][dead3][:, live2], fresh[w3][dead3][:, live2])  # incoming: re-drawn
    assert torch.equal(after[w3][:, dead2], torch.zeros_like(after[w3][:, dead2]))  # block2's outgoing: 0
    head = "head.2.weight"
    assert torch.equal(after[head][:, dead3], torch.zeros_like(after[head][:, dead3]))
    live = [c for c in range(after[head].shape[1]) if c not in dead3]
    assert torch.equal(after[head][:, live], before[head][:, live])
    for name in ("stem.0.weight", "block1.0.weight", "head.2.bias"):
        assert torch.equal(after[name], before[name]), name


def test_redo_redraws_the_bias_of_a_dormant_unit_in_a_layer_without_norm():
    model, _, batches = trained_model("mlp")  # stem.1 and block1.0: linear layers with biases, no norm
    with torch.no_grad():
        model.stem[1].bias[[2]] = -1e3
    before = state(model)
    fresh = fresh_state(model, derive(SEED, "fresh", 1))
    Reinitializer(model, "redo:tau=0.02", rounds=2, seed=SEED).reset(1, data=batches)
    after = state(model)
    for name in ("stem.1.weight", "stem.1.bias"):
        assert torch.equal(after[name][2], fresh[name][2]), name
        assert torch.equal(after[name][3:], before[name][3:]), name
    assert torch.equal(after["block1.0.weight"][:, 2], torch.zeros_like(after["block1.0.weight"][:, 2]))


def test_redo_in_round_without_dormant_units_is_no_event():
    """An in-round check that finds nothing is not counted as the method acting."""
    model, _, batches = trained_model()
    reinit = Reinitializer(model, "redo:tau=0.0,every=1", rounds=1, seed=SEED)
    before = state(model)
    assert reinit.after_step(0, 1, data=batches) is None
    assert all(torch.equal(before[k], v) for k, v in state(model).items())
    assert not any(log["events"] for log in reinit.in_round_log)


# ---- scratch -------------------------------------------------------------------------------------
def test_scratch_redraws_the_whole_network_as_a_fresh_initialization():
    model, _, batches = trained_model()
    fresh = fresh_state(model, derive(SEED, "fresh", 2))
    Reinitializer(model, "scratch", rounds=3, seed=SEED).reset(2, data=batches)
    after = state(model)
    for name, _ in model.named_parameters():
        assert torch.equal(after[name], fresh[name]), name


# ---- rewind and the re-draw sources ----------------------------------------------------------------
def test_rewind_returns_every_round_to_the_weights_after_its_epoch_of_round_0():
    model, _, batches = trained_model()
    reinit = Reinitializer(model, "rewind:rewind_epoch=2", rounds=2, seed=SEED)
    reinit.end_epoch(0, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    snapshot = state(model)  # after epoch 2
    reinit.end_epoch(0, 2)
    for r in (1, 2):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.5)
        model(batches[0][0])  # moves running statistics too
        reinit.reset(r)
        assert all(torch.equal(v, snapshot[k]) for k, v in state(model).items())


def test_rewind_epoch_beyond_round_0_is_refused_before_training():
    with pytest.raises(UserError, match="rewind_epoch=5 is out of range"):
        make_method("rewind:rewind_epoch=5").epochs(3, 4)
    with pytest.raises(UserError, match="rewind_epoch=5 is out of range"):
        make_method("fc:redraw=rewind,rewind_epoch=5").epochs(3, 4)
    with pytest.raises(ValueError, match="end_epoch"):
        model, _, _ = trained_model()
        Reinitializer(model, "fc:redraw=rewind", rounds=1).reset(1)


@pytest.mark.parametrize("spec", ["ke:redraw=init", "fc:redraw=init", "dsd:redraw=init"])
def test_redraw_init_returns_redrawn_elements_to_the_runs_initial_values(spec):
    torch.manual_seed(0)
    from reinitlab.models import build_model
    model = build_model("cnn", 1, 4, width=0.25, resolution=16)
    reinit = Reinitializer(model, spec, rounds=1, seed=SEED)  # w0 copied now
    w0 = state(model)
    model2, _, batches = trained_model()  # the same architecture, trained
    model.load_state_dict(model2.state_dict())
    before = state(model)
    reinit.reset(1, data=batches)
    after = state(model)
    changed = 0
    for n, _ in model.named_parameters():
        redrawn = after[n] != before[n]
        assert torch.equal(after[n][redrawn], w0[n][redrawn]), n
        changed += int(redrawn.sum())
    assert changed > 0


def test_redraw_peer_draws_pytorchs_default_bound():
    model, _, _ = trained_model()
    before = state(model)
    Reinitializer(model, "fc:redraw=peer", rounds=1, seed=SEED).reset(1)
    w = model.head[2].weight
    assert not torch.equal(w, before["head.2.weight"])
    assert float(w.detach().abs().max()) <= 1 / math.sqrt(w.shape[1]) + 1e-7
    assert make_method("ke:peer=true").redraw == "peer" and make_method("ke").redraw == "fresh"
    assert make_method("ke:peer=true,redraw=fresh").redraw == "fresh"


# ---- l2init --------------------------------------------------------------------------------------
def test_l2init_resets_nothing_and_its_loss_term_pulls_towards_w0():
    torch.manual_seed(0)
    from reinitlab.models import build_model
    model = build_model("cnn", 1, 4, width=0.25, resolution=16)
    reinit = Reinitializer(model, "l2init:lam=0.01", rounds=2, seed=SEED)
    w0 = state(model)
    assert float(reinit.loss_term().detach()) == 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    before = state(model)
    record = reinit.reset(1)
    assert all(torch.equal(v, before[k]) for k, v in state(model).items())
    assert all(v == 0.0 for v in record["redrawn_fraction"].values())
    term = reinit.loss_term(1)
    expect = 0.01 * sum(float((p.detach() - w0[n]).pow(2).sum()) for n, p in model.named_parameters())
    assert math.isclose(float(term.detach()), expect, rel_tol=1e-5)
    term.backward()
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, 2 * 0.01 * (p.detach() - w0[n]), atol=1e-7), n
    assert Reinitializer(model, "lw", rounds=1).loss_term() is None


# ---- swr -----------------------------------------------------------------------------------------
def test_swr_redraws_the_lowest_magnitudes_among_mature_weights_only():
    model, _, batches = trained_model()
    reinit = Reinitializer(model, "swr:every=2,rate=0.05,maturity=3", rounds=1, seed=SEED)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)  # lr 0: only events move weights
    x, y = batches[0]
    name = "block2.0.weight"
    p = dict(model.named_parameters())[name]
    born = torch.zeros(p.shape, dtype=torch.long)  # the test's own account of each weight's age
    for step in range(1, 9):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        before = p.detach().clone()
        out = reinit.after_step(0, step, opt)
        changed = p.detach() != before
        if step % 2 or step == 2:  # no event, or (step 2) every weight is 2 <= maturity 3 steps old
            assert out is None and not changed.any(), step
            continue
        k = math.floor(0.05 * p.numel() * step / 2) - math.floor(0.05 * p.numel() * (step - 2) / 2)
        assert int(changed.sum()) == k, step
        mature = (step - born) > 3
        assert not (changed & ~mature).any(), "an immature weight was re-drawn"
        assert float(before.abs()[changed].max()) <= float(before.abs()[mature & ~changed].min()), \
            "not the lowest magnitudes"
        assert torch.equal(opt.state[p]["momentum_buffer"][changed], torch.zeros(int(changed.sum())))
        born[changed] = step
    assert int((born == 6).sum()) > 0 and not ((born == 4) & (born == 6)).any()
    # a state-dict round trip continues with the same events
    saved = copy.deepcopy(reinit.state_dict())
    clone_model = copy.deepcopy(model)
    clone = Reinitializer(clone_model, "swr:every=2,rate=0.05,maturity=3", rounds=1, seed=SEED)
    clone.load_state_dict(saved)
    for step in (9, 10):
        reinit.after_step(0, step)
        clone.after_step(0, step)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), clone_model.state_dict().values(), strict=True))


class SWROracle:
    """SWR's rule as its description states it, per weight tensor of every conv and linear layer in
    model order: each event adds rate x size to what is owed and replaces the whole part of it; only
    weights older than maturity steps (steps counted over the run, from 1) can be replaced, the
    lowest scores first (|w|, or |w x grad| for score=utility, 0 without a gradient), ties by position."""

    def __init__(self, model, rate, maturity, utility):
        self.rate, self.maturity, self.utility, self.steps = rate, maturity, utility, 0
        self.names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.born = {n: torch.zeros(dict(model.named_parameters())[n].numel(), dtype=torch.long) for n in self.names}
        self.owed = dict.fromkeys(self.names, 0.0)

    def step(self, params) -> dict[str, set[int]]:
        self.steps += 1
        out = {}
        for n in self.names:
            p = params[n].detach().flatten()
            self.owed[n] += self.rate * p.numel()
            k = math.floor(self.owed[n])
            self.owed[n] -= k
            mature = [i for i in range(p.numel()) if self.steps - int(self.born[n][i]) > self.maturity]
            grad = params[n].grad
            score = {i: abs(float(p[i])) * (abs(float(grad.flatten()[i])) if grad is not None else 0.0)
                     if self.utility else abs(float(p[i])) for i in mature}
            chosen = sorted(mature, key=lambda i: (score[i], i))[:min(k, len(mature))]
            for i in chosen:
                self.born[n][i] = self.steps
            if chosen:
                out[n] = set(chosen)
        return out


@pytest.mark.parametrize("score,with_grad,maturity", [("magnitude", True, 2), ("utility", True, 2),
                                                     ("utility", False, 2), ("magnitude", True, 0)])
def test_swr_replaces_exactly_what_its_rule_picks_in_every_layer(score, with_grad, maturity):
    """every=1, a rate under which small tensors owe less than one weight per step (so some steps
    replace nothing in them and some one); maturity 2: nothing before step 3."""
    model, _, batches = trained_model()
    reinit = Reinitializer(model, f"swr:every=1,rate=0.01,maturity={maturity},score={score}", rounds=1,
                            seed=SEED)
    oracle = SWROracle(model, 0.01, maturity, score == "utility")  # the stem's 72 weights owe 0.72 per step
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    params = dict(model.named_parameters())
    x, y = batches[0]
    sizes = set()
    for step in range(1, 7):
        opt.zero_grad(set_to_none=True)
        if with_grad:
            F.cross_entropy(model(x), y).backward()
            opt.step()
        before = {n: p.detach().clone() for n, p in params.items()}
        expect = oracle.step(params)
        reinit.after_step(0, step, opt)
        got = {n: set(torch.nonzero((p.detach() != before[n]).flatten()).flatten().tolist())
               for n, p in params.items()}
        got = {n: s for n, s in got.items() if s}
        assert got == expect, step
        assert (step > maturity) == bool(got), step
        if got:
            sizes.add(len(got.get("stem.0.weight", ())))
    assert sizes == {0, 1}  # the stem replaced nothing at some steps (others did) and one weight at others


def test_redo_zeroes_a_dormant_channels_columns_in_a_linear_layer_after_a_flatten():
    """conv (4 channels) -> ReLU -> flatten -> linear: channel c feeds the linear layer's columns
    16c..16c+15 (channel-major); a dormant channel's 16 columns are zeroed, the others kept."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3))
    with torch.no_grad():
        model[3].bias[2] = -1e3
    batches = [(torch.randn(8, 1, 8, 8), torch.arange(8) % 3)]
    before = state(model)
    groups = {"stem": ["0"], "block1": ["3"], "head": ["6"]}
    record = Reinitializer(model, "redo:tau=0.02", rounds=2, groups=groups, seed=SEED).reset(1, data=batches)
    after = state(model)
    assert record["event"] == "redo tau 0.02: 1 dormant units"
    dead = list(range(32, 48))
    assert torch.equal(after["6.weight"][:, dead], torch.zeros(3, 16))
    live = [c for c in range(64) if c not in dead]
    assert torch.equal(after["6.weight"][:, live], before["6.weight"][:, live])


class Concatenated(nn.Module):
    """Two convs whose outputs are concatenated before a third (grouped or not): in model order
    `b` is followed by `c`, but `c` reads 8 channels of which `b` gives 4, at positions only the
    forward() knows."""

    def __init__(self, groups):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 1, groups=groups)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], 1)
        return self.head(F.relu(self.c(h)).mean((2, 3)))


@pytest.mark.parametrize("groups", [1, 2])
def test_redo_leaves_the_next_layer_alone_when_it_reads_more_than_this_layers_units(groups):
    torch.manual_seed(0)
    model = Concatenated(groups)
    with torch.no_grad():
        model.b.bias[1] = -1e3
        model.c.bias.fill_(10.0)  # c's own units all active: its rows stay
    before = state(model)
    groups_of = {"stem": ["a", "b"], "block1": ["c"], "head": ["head"]}
    Reinitializer(model, "redo:tau=0.02", rounds=2, groups=groups_of, seed=SEED).reset(
        1, data=[(torch.randn(8, 1, 6, 6), torch.arange(8) % 3)])
    after = state(model)
    assert not torch.equal(after["b.weight"][1], before["b.weight"][1])  # b's dormant unit: re-drawn
    assert torch.equal(after["c.weight"], before["c.weight"])
