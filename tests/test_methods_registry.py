"""One property test over every registered method (as timm tests every registered model): a
method registered later is covered without editing this file.

For every method, every option set that flips one bool or picks another value of a Literal option
(lw's order=top_down, rescale=false, normalize=false; ke's mode=kels; ...) and every other re-draw
source (redraw=init, rewind, peer), a plain and a residual registry model, and every round
r = 1..R of the architecture's full budget, the method's ResetEvent is built on a model moved away
from its initialization, applied against the source the Reinitializer gives it, and each parameter
p is checked against what its Action says, with s the source's value:

  not named, or identity   bit-identical
  keep=True                scale * p + noise * s + offset
  keep=False               exactly s
  keep=mask                the kept value where the mask is True, s elsewhere

and the buffers (BatchNorm running statistics) of every module whose own parameters were all re-drawn,
and those the event names in `fresh_buffers`, are exactly the source's, a buffer the event gives an
Action (`buffer_actions`) ends as that Action says, and every other buffer is untouched. Methods that
act during a round (step_event, epoch_event) are checked the same way on the events they return over
the first steps and epochs of a round; for the methods that watch training (they override `attach`:
cbp, snr, hare) a training step precedes each of round 1's first WATCHED_STEPS step_events, so they
see training as they would in a run.
"""
import dataclasses
import typing

import pytest
import torch
import torch.nn.functional as F

from reinitlab.core.groups import groups_of
from reinitlab.core.method import RedrawOptions
from reinitlab.core.reinit import Reinitializer
from reinitlab.core.reset import Action, apply_event
from reinitlab.methods import METHODS, Method, ResetContext
from reinitlab.models import build_model
from reinitlab.util.seeding import derive

SEED = 3
MODELS = {"cnn": dict(in_channels=1, resolution=16, width=0.25),  # plain
         "resnet18": dict(in_channels=3, resolution=16, width=0.125)}  # residual
IN_ROUND_STEPS, IN_ROUND_EPOCHS, WATCHED_STEPS = 60, 2, 15
# option sets that make a method act within IN_ROUND_STEPS (its defaults wait 1000 steps), besides the
# defaults and the flipped options every method gets
ACTING = {"cbp": [{"replacement_rate": 0.05, "maturity": 5}, {"replacement_rate": 0.05, "maturity": 5,
                                                               "utility": "adaptable_contribution"}],
          "fc": [{"every": 7}], "sp": [{"step": 0.2, "every_epochs": 1}]}


def _choices(tp, default) -> list:
    """Other values of a bool or a Literal (also inside Optional) than `default`."""
    if tp is bool:
        return [not default]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:
        return _choices(args[0], default)
    if typing.get_origin(tp) is typing.Literal:
        return [v for v in args if v != default]
    return []


def option_sets(cls) -> list[dict]:
    """The defaults, then one set per bool flipped and per other value of each Literal option."""
    sets: list[dict] = [{}]
    if dataclasses.is_dataclass(cls.Options):
        hints = typing.get_type_hints(cls.Options)
        for f in dataclasses.fields(cls.Options):
            default = f.default if f.default is not dataclasses.MISSING else None
            sets += [{f.name: v} for v in _choices(hints[f.name], default)]
    sets += [s for s in ACTING.get(cls.name, []) if s not in sets]
    if cls.resets and cls.redraws:
        default = cls().redraw
        sets += [{"redraw": v} for v in _choices(typing.get_type_hints(RedrawOptions)["redraw"], None) if v != default]
    return sets


def _id(name, opts, arch):
    return f"{name}-{','.join(f'{k}={v}' for k, v in opts.items()) or 'defaults'}-{arch}"


# the re-draw sources do not depend on the architecture: those sets run on the plain model only
CASES = [pytest.param(name, opts, arch, id=_id(name, opts, arch))
         for name in METHODS for opts in option_sets(METHODS[name]) for arch in MODELS
         if arch == "cnn" or "redraw" not in opts]


def train_steps(model, x, y, steps=3):
    """A few SGD steps in train mode: weights and BatchNorm running statistics leave their init."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def expected_param(old: torch.Tensor, src: torch.Tensor | None, act: Action) -> torch.Tensor:
    if act.keep is False:
        return src
    kept = old * act.scale
    if act.noise:
        kept = kept + act.noise * src
    if act.offset is not None:
        kept = kept + act.offset
    if act.keep is True:
        return kept
    return torch.where(act.keep, kept, src)


def check_event(model, groups, event, source, what: str) -> None:
    params = dict(model.named_parameters())
    assert set(event.actions) <= set(params), f"{what}: the event names only the model's parameters"
    assert event.normalize_after is None or event.normalize_after in groups.names
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    apply_event(model, groups, event, source)
    after = model.state_dict()
    for pname in params:
        act = event.actions.get(pname, Action())
        if isinstance(act.keep, torch.Tensor):
            assert act.keep.dtype == torch.bool and act.keep.shape == params[pname].shape, pname
        if act.is_identity():
            assert torch.equal(after[pname], before[pname]), f"{what}: {pname} changed although its Action keeps it"
            continue
        want = expected_param(before[pname], source.get(pname) if act.needs_source() else None, act)
        if act.noise or act.offset is not None:  # sums of products: allow a fused multiply-add's last bit
            torch.testing.assert_close(after[pname], want, rtol=1e-6, atol=1e-7, msg=f"{what}: {pname}")
        else:
            assert torch.equal(after[pname], want), f"{what}: {pname} is not as its Action says"
    for mname, module in model.named_modules():
        own = [f"{mname}.{n}" if mname else n for n, _ in module.named_parameters(recurse=False)]
        redrawn = bool(own) and all(event.actions.get(n, Action()).keep is False for n in own)
        for bname, _ in module.named_buffers(recurse=False):
            key = f"{mname}.{bname}" if mname else bname
            takes = (redrawn or key in event.fresh_buffers) and key in source
            want = source[key] if takes else before[key]
            act = event.buffer_actions.get(key)
            if act is not None:
                want = expected_param(want, source.get(key) if act.needs_source() else None, act)
                torch.testing.assert_close(after[key], want, rtol=0, atol=0, msg=f"{what}: buffer {key}")
                continue
            assert torch.equal(after[key], want), f"{what}: buffer {key} " + (
                "is not the source's although its module was re-drawn whole" if takes else "changed")
    assert set(event.buffer_actions) <= set(dict(model.named_buffers())), f"{what}: unknown buffers"


@pytest.mark.parametrize("name,options,arch", CASES)
def test_every_parameter_ends_as_its_reset_event_says(name, options, arch):
    cls = METHODS[name]
    a = MODELS[arch]
    torch.manual_seed(derive(SEED, "init"))
    model = build_model(arch, a["in_channels"], 5, width=a["width"], resolution=a["resolution"])
    groups = groups_of(model)
    rounds = groups.K - 1  # the architecture's full LW budget
    method = cls(**options)
    if not cls.resets:
        assert method.epochs(rounds, 4) in ([4], [(rounds + 1) * 4]), "a method without resets trains one round"
        return
    assert len(method.epochs(rounds, 4)) == rounds + 1
    reinit = Reinitializer(model, method, rounds, groups, seed=SEED)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, a["in_channels"], a["resolution"], a["resolution"], generator=g)
    y = torch.arange(40) % 5
    batches = lambda: [(x[:20], y[:20]), (x[20:], y[20:])]  # noqa: E731
    train_steps(model, x, y)
    reinit.end_epoch(0, 1, last=True)  # round 0's epoch 1: the rewind snapshot

    def ctx(r, **when):
        return ResetContext(model=model, groups=groups, round=r, rounds=rounds, init_norms=reinit.init_norms,
                            seed=SEED, batches=batches, loss_fn=F.cross_entropy, initial=reinit.initial, **when)

    acted = 0
    for r in range(1, rounds + 1):
        train_steps(model, x, y)
        event = method.event(ctx(r))
        check_event(model, groups, event, reinit.source(event, r), f"{name} round {r}")
        if not method.in_round:
            continue
        watches = type(method).attach is not Method.attach
        for step in range(1, IN_ROUND_STEPS + 1):
            if watches and r == 1 and step <= WATCHED_STEPS:
                train_steps(model, x, y, steps=1)
            event = method.step_event(ctx(r, step=step))
            if acts(event):
                acted += 1
                check_event(model, groups, event, reinit.source(event, r, step=step), f"{name} r{r} step {step}")
        for epoch in range(1, IN_ROUND_EPOCHS + 1):
            event = method.epoch_event(ctx(r, epoch=epoch))
            if acts(event):
                acted += 1
                check_event(model, groups, event, reinit.source(event, r, step=("epoch", epoch)),
                            f"{name} r{r} epoch {epoch}")
    assert acted or options not in ACTING.get(name, []), f"{name}:{options} never acted inside a round"


def acts(event) -> bool:
    return event is not None and bool(event.actions or event.fresh_buffers or event.buffer_actions)


def test_every_registered_method_is_a_case():
    """Guards the parametrization itself: a registered method can never drop out of the test above."""
    assert {c.values[0] for c in CASES} == set(METHODS)
    lw, ke = option_sets(METHODS["lw"]), option_sets(METHODS["ke"])
    assert {"order": "top_down"} in lw and {"mode": "kels"} in ke and {"redraw": "init"} in lw
