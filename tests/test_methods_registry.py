"""One property test over every registered method (as timm tests every registered model): a
method registered later is covered without editing this file.

For every method, every option set that flips one bool or picks another value of a Literal option
(lw's order=top_down, rescale=false, normalize=false; ke's mode=kels; ...), a plain and a residual
registry model, and every round r = 1..R of the architecture's full budget, the method's
ResetEvent is built on a model moved away from its initialization, applied, and each parameter is
checked against what its Action says:

  not named, or identity   bit-identical
  keep=True                exactly the old tensor times `scale` (plus `noise` x the fresh draw)
  keep=False               exactly the fresh draw
  keep=mask                the kept value where the mask is True, the fresh draw elsewhere

and the buffers (BatchNorm running statistics) of every module whose own parameters were all re-drawn
are exactly the fresh ones, while every other buffer is untouched.
"""
import dataclasses
import typing

import pytest
import torch
import torch.nn.functional as F

from reinitlab.groups import groups_of
from reinitlab.methods import METHODS, ResetContext
from reinitlab.models import build_model
from reinitlab.reset import Action, apply_event, fresh_state
from reinitlab.seeding import derive

SEED = 3
ARCHS = {"cnn": dict(in_channels=1, resolution=16, width=0.25),  # plain
         "resnet18": dict(in_channels=3, resolution=16, width=0.125)}  # residual


def option_sets(cls) -> list[dict]:
    """The defaults, then one set per bool flipped and per other value of each Literal option."""
    sets: list[dict] = [{}]
    if not dataclasses.is_dataclass(cls.Options):
        return sets
    hints = typing.get_type_hints(cls.Options)
    for f in dataclasses.fields(cls.Options):
        default = f.default if f.default is not dataclasses.MISSING else None
        tp = hints[f.name]
        if tp is bool:
            sets.append({f.name: not default})
        elif typing.get_origin(tp) is typing.Literal:
            sets += [{f.name: v} for v in typing.get_args(tp) if v != default]
    return sets


CASES = [pytest.param(name, opts, arch, id=f"{name}-{','.join(f'{k}={v}' for k, v in opts.items()) or 'defaults'}-{arch}")
         for name in METHODS for opts in option_sets(METHODS[name]) for arch in ARCHS]


def train_steps(model, x, y, steps=3):
    """A few SGD steps in train mode: weights and BatchNorm running statistics leave their init."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def expected_param(old: torch.Tensor, fresh: torch.Tensor, act: Action) -> torch.Tensor:
    kept = old * act.scale if act.scale != 1.0 else old.clone()
    if act.noise:
        kept = kept + act.noise * fresh
    if act.keep is True:
        return kept
    if act.keep is False:
        return fresh
    return torch.where(act.keep, kept, fresh)


@pytest.mark.parametrize("name,options,arch", CASES)
def test_every_parameter_ends_as_its_reset_event_says(name, options, arch):
    cls = METHODS[name]
    method = cls(**options)
    a = ARCHS[arch]
    torch.manual_seed(derive(SEED, "init"))
    model = build_model(arch, a["in_channels"], 5, width=a["width"], resolution=a["resolution"])
    groups = groups_of(model)
    rounds = groups.K - 1  # the architecture's full LW budget
    if not cls.resets:
        assert method.epochs(rounds, 4) in ([4], [(rounds + 1) * 4]), "a method without resets trains one round"
        return
    assert len(method.epochs(rounds, 4)) == rounds + 1
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, a["in_channels"], a["resolution"], a["resolution"], generator=g)
    y = torch.arange(40) % 5
    init_norms = {n: float(p.detach().norm()) for n, p in model.named_parameters()}
    modules = dict(model.named_modules())
    for r in range(1, rounds + 1):
        train_steps(model, x, y)
        ctx = ResetContext(model=model, groups=groups, round=r, rounds=rounds, init_norms=init_norms, seed=SEED,
                           batches=lambda: [(x[:20], y[:20]), (x[20:], y[20:])], loss_fn=F.cross_entropy)
        event = method.event(ctx)
        params = dict(model.named_parameters())
        assert set(event.actions) <= set(params), "the event names only the model's parameters"
        assert event.normalize_after is None or event.normalize_after in groups.names
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        fresh = fresh_state(model, derive(SEED, "fresh", r))
        apply_event(model, groups, event, fresh)
        after = model.state_dict()
        for pname in params:
            act = event.actions.get(pname, Action())
            if isinstance(act.keep, torch.Tensor):
                assert act.keep.dtype == torch.bool and act.keep.shape == params[pname].shape, pname
            want = before[pname] if act.is_identity() else expected_param(before[pname], fresh[pname], act)
            if act.noise:  # a sum of two products: allow the last bit of a fused multiply-add
                torch.testing.assert_close(after[pname], want, rtol=1e-6, atol=1e-7, msg=f"{name} r{r} {pname}")
            else:
                assert torch.equal(after[pname], want), f"{name} round {r}: {pname} is not as its Action says"
        for mname, module in modules.items():
            own = [f"{mname}.{n}" if mname else n for n, _ in module.named_parameters(recurse=False)]
            redrawn = bool(own) and all(event.actions.get(n, Action()).keep is False for n in own)
            for bname, _ in module.named_buffers(recurse=False):
                key = f"{mname}.{bname}" if mname else bname
                want = fresh[key] if redrawn else before[key]
                assert torch.equal(after[key], want), f"{name} round {r}: buffer {key} " + (
                    "is not the fresh one although its module was re-drawn whole" if redrawn else "changed")


def test_every_registered_method_is_a_case():
    """Guards the parametrization itself: a registered method can never drop out of the test above."""
    assert {c.values[0] for c in CASES} == set(METHODS)
    assert {"order": "top_down"} in option_sets(METHODS["lw"]) and {"mode": "kels"} in option_sets(METHODS["ke"])
