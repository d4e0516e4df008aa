"""The library refuses what would harm a model, with one clear exception and before
anything in the model changes: round numbers out of range, `rounds` of the wrong type or sign, and
training data or statistics that are not finite (LW would freeze NaN statistics into the model)."""
import pytest
import torch

from reinitlab.core.reinit import Reinitializer
from reinitlab.models import build_model


def model():
    torch.manual_seed(0)
    return build_model("cnn", 1, 4, 0.25, 16)


def data(n=16, bad=None):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 1, 16, 16, generator=g), torch.arange(n) % 4
    if bad is not None:
        x[3, 0, 5, 5] = bad
    return x, y


def snapshot(m):
    return [(n, type(mod).__name__) for n, mod in m.named_modules()], {k: v.clone() for k, v in m.state_dict().items()}


def unchanged(m, before) -> bool:
    structure, state = snapshot(m)
    return structure == before[0] and state.keys() == before[1].keys() and all(
        torch.equal(state[k], before[1][k]) for k in state)


# (constructor keywords, exception, what the message says)
CONSTRUCT = [
    (dict(rounds=-3), ValueError, "rounds=-3 is out of range"),
    (dict(rounds="2"), TypeError, "rounds='2': expected an integer, got str"),
    (dict(rounds=2.0), TypeError, "rounds=2.0: expected an integer"),
    (dict(rounds=True), TypeError, "rounds=True: expected an integer, got bool"),
    (dict(rounds=None), TypeError, "rounds=None"),
    (dict(rounds=2, seed=-1), ValueError, "seed=-1"),
    (dict(rounds=2, seed="0"), TypeError, "seed='0'"),
    (dict(rounds=2, stat_batches=0), ValueError, "stat_batches=0"),
    (dict(rounds=2, method=3), TypeError, "method: expected a method spec"),
]


@pytest.mark.parametrize("kw,exc,text", CONSTRUCT, ids=[str(c[0]) for c in CONSTRUCT])
def test_the_constructor_refuses_bad_arguments(kw, exc, text):
    kw = {"method": "lw", **kw}
    with pytest.raises(exc, match=text.replace("(", r"\(").replace(")", r"\)")):
        Reinitializer(model(), kw.pop("method"), **kw)


def test_a_model_that_is_not_a_module_is_refused():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got OrderedDict"):
        Reinitializer(model().state_dict(), "lw", rounds=1)


# (call, arguments, exception, message) on a Reinitializer with rounds=2
CALLS = [
    ("reset", (-1,), ValueError, r"reset\(-1\): round out of range: expected an integer in 1..2"),
    ("reset", (0,), ValueError, r"reset\(0\): .*round 0 trains from the initial weights"),
    ("reset", (3,), ValueError, r"reset\(3\): round out of range"),
    ("reset", ("1",), TypeError, "round='1'"),
    ("reset", (1.0,), TypeError, "round=1.0"),
    ("after_step", (3, 1), ValueError, r"after_step\(3\)"),
    ("after_step", (-1, 1), ValueError, r"after_step\(-1\)"),
    ("after_step", (0, 0), ValueError, "step=0 is out of range"),
    ("after_step", (0, "5"), TypeError, "step='5'"),
    ("end_epoch", (0, 0), ValueError, "epoch=0 is out of range"),
    ("end_epoch", (5, 1), ValueError, r"end_epoch\(5\)"),
]


@pytest.mark.parametrize("spec", ["lw", "fc", "swr:every=1,maturity=0", "sp:every_epochs=1"])
@pytest.mark.parametrize("call,args,exc,text", CALLS, ids=[f"{c[0]}{c[1]}" for c in CALLS])
def test_round_and_step_numbers_out_of_range_are_refused_and_change_nothing(spec, call, args, exc, text):
    m = model()
    reinit = Reinitializer(m, spec, rounds=2)
    before = snapshot(m)
    with pytest.raises(exc, match=text):
        getattr(reinit, call)(*args, **({"data": data()} if call == "reset" else {}))
    assert unchanged(m, before) and reinit.history == [] and reinit.in_round_log == []


def test_a_method_without_rounds_refuses_every_reset():
    reinit = Reinitializer(model(), "baseline", rounds=3)
    with pytest.raises(ValueError, match="no reset rounds"):
        reinit.reset(1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("spec", ["lw", "dnr", "redo", "dash"])
def test_non_finite_data_is_refused_before_anything_changes(spec, bad):
    """Every method that reads data at a reset: LW's standardization statistics, DNR's and DASH's
    gradients, ReDo's activations. Given as a tuple, a list of batches or a callable."""
    for given in (data(bad=bad), [data(), data(bad=bad)], lambda: [data(bad=bad)]):
        m = model()
        reinit = Reinitializer(m, spec, rounds=2)
        before = snapshot(m)
        with pytest.raises(ValueError, match="non-finite input values"):
            reinit.reset(1, data=given)
        assert unchanged(m, before) and reinit.history == [] and reinit.standardized == {}
        reinit.reset(1, data=data())  # the same reset with clean data goes through
        assert len(reinit.history) == 1


def test_float_labels_and_missing_data_are_refused_before_anything_changes():
    m = model()
    reinit = Reinitializer(m, "lw", rounds=2)
    before = snapshot(m)
    x, y = data()
    with pytest.raises(TypeError, match="labels are torch.float32"):
        reinit.reset(1, data=(x, y.float()))
    with pytest.raises(ValueError, match="needs training data"):
        reinit.reset(1)
    assert unchanged(m, before)


def test_non_finite_statistics_undo_the_reset():
    """Finite data, but a kept layer whose output overflows: the standardization's statistics would
    be inf; the reset is undone and no standardization is inserted."""
    m = model()
    reinit = Reinitializer(m, "lw:rescale=false", rounds=2)
    with torch.no_grad():
        m.get_parameter(next(n for n, _ in m.named_parameters() if n.startswith("stem") and n.endswith("weight"))
                        ).fill_(3e38)
    before = snapshot(m)
    with pytest.raises(ValueError, match="non-finite statistics"):
        reinit.reset(1, data=data())
    assert unchanged(m, before) and reinit.standardized == {} and reinit.history == []


def test_a_valid_reset_still_changes_the_model():
    """The guard against the mutation 'refuse everything': reset(1) on clean data re-draws and
    inserts LW's standardization."""
    m = model()
    reinit = Reinitializer(m, "lw", rounds=2)
    before = snapshot(m)
    reinit.reset(1, data=data())
    assert not unchanged(m, before) and reinit.standardized
