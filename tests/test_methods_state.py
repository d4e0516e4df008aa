"""A method's in-round state (unit ages and utilities, firing thresholds and gap histograms, weight
ages and owed replacements, the tortoise, the counts of what was replaced) goes through
state_dict / load_state_dict whole: a copy restored mid-round continues exactly as the original.
This is what a resumed run relies on, checked here without the training loop."""
import copy

import pytest
import torch
import torch.nn.functional as F
from test_core_reset import SEED, trained_model

from reinitlab import Reinitializer

SPECS = ["cbp:replacement_rate=0.2,maturity=2", "snr:tau_init=32,tau_max=64,adapt_every=2",
         "swr:every=2,rate=0.1,maturity=1", "swr:every=2,rate=0.1,maturity=1,score=utility",
         "hare:momentum=0.5,every_epochs=1"]


def steps(model, reinit, opt, batches, first, n):
    for step in range(first, first + n):
        x, y = batches[step % len(batches)]
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        reinit.after_step(0, step, opt, data=batches)
        if step % 3 == 0:
            reinit.end_epoch(0, step // 3, data=batches)


def tensors(state):
    """Nested state as a flat {path: value} for exact comparison."""
    out = {}

    def walk(prefix, v):
        if isinstance(v, dict):
            for k, w in v.items():
                walk(f"{prefix}.{k}", w)
        elif isinstance(v, (list, tuple)):
            for i, w in enumerate(v):
                walk(f"{prefix}[{i}]", w)
        else:
            out[prefix] = v
    walk("", state)
    return out


def same(a, b):
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        if isinstance(ta[k], torch.Tensor):
            assert torch.equal(ta[k], tb[k]), k
        else:
            assert ta[k] == tb[k], k


@pytest.mark.parametrize("spec", SPECS)
def test_a_restored_copy_continues_exactly_as_the_original(spec):
    model, _, batches = trained_model()
    with torch.no_grad():
        model.stem[1].bias[[1, 2]] = -1e3  # units that never fire: snr resets them
    reinit = Reinitializer(model, spec, rounds=1, seed=SEED)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    steps(model, reinit, opt, batches, 1, 7)
    acted = sum(log["events"] for log in reinit.in_round_log)
    assert acted > 0, "the state to restore should include replacements"

    copy_model = copy.deepcopy(model)
    copy_reinit = Reinitializer(copy_model, spec, rounds=1, seed=SEED)
    copy_reinit.load_state_dict(copy.deepcopy(reinit.state_dict()))
    copy_opt = torch.optim.SGD(copy_model.parameters(), lr=0.05, momentum=0.9)
    copy_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # else the two share momentum buffers
    same(copy_reinit.method.state_dict(), reinit.method.state_dict())

    steps(model, reinit, opt, batches, 8, 7)
    steps(copy_model, copy_reinit, copy_opt, batches, 8, 7)
    same(copy_reinit.method.state_dict(), reinit.method.state_dict())
    assert copy_reinit.in_round_log == reinit.in_round_log
    for (n, a), b in zip(model.state_dict().items(), copy_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
