"""Every method option's valid range, at its edges: a closed end is accepted, a value just past it is
refused, an open end is refused and a value just inside it accepted, and each refusal is one line
naming the option, the value given and the range. The table is the ranges users may rely on."""
import pytest

from reinitlab.core.method import METHODS, make_method
from reinitlab.util.errors import UserError

# method, option, low end, high end, low end open, high end open, other options the edge needs
RANGES = [
    ("cbp", "replacement_rate", 0.0, 1.0, False, False, ""),
    ("cbp", "maturity", 0, 10**12, False, False, ""),
    ("cbp", "decay", 0.0, 1.0, False, True, ""),
    ("dash", "lam", 0.0, 1.0, False, False, ""),
    ("dnr", "keep", 0.0, 1.0, True, True, ""),
    ("dsd", "keep", 0.0, 1.0, True, True, ""),
    ("fc", "every", 0, 10**9, False, False, ""),
    ("fc", "every_epochs", 0, 10**6, False, False, ""),
    ("fire", "alpha", 0.0, 1.0, False, False, ""),
    ("fire", "iterations", 1, 100, False, False, ""),
    ("hare", "momentum", 0.0, 1.0, False, True, ""),
    ("hare", "every_epochs", 1, 10**6, False, False, ""),
    ("ke", "split_rate", 0.0, 1.0, True, True, ""),
    ("welsr", "split_rate", 0.0, 1.0, True, True, ""),
    ("l2init", "lam", 0.0, 1e3, False, False, ""),
    ("redo", "tau", 0.0, 1.0, False, False, ""),
    ("redo", "every", 0, 10**9, False, False, ""),
    ("rewind", "rewind_epoch", 1, 10**6, False, False, ""),
    ("snr", "percentile", 0.0, 1.0, True, False, ""),
    ("snr", "expansion", 1.0, 1e6, False, False, ""),
    ("snr", "adapt_every", 1, 10**9, False, False, ""),
    ("snr", "tau_max", 1, 10**9, False, False, "tau_init=1"),
    ("snr", "tau_init", 1, 10**9, False, False, "tau_max=1000000000"),
    ("sp", "shrink", 0.0, 1.0, False, False, ""),
    ("sp", "perturb", 0.0, 10.0, False, False, ""),
    ("sp", "every_epochs", 0, 10**6, False, False, ""),
    ("sp", "step", 0.0, 1.0, False, False, ""),
    ("swr", "every", 1, 10**9, False, False, ""),
    ("swr", "rate", 0.0, 1.0, True, False, ""),
    ("swr", "maturity", 0, 10**12, False, False, ""),
]


def inside(end, towards_lo: bool):
    """The nearest value on the valid side of an open end (or just past a closed one)."""
    if isinstance(end, int):
        return end - 1 if towards_lo else end + 1
    step = 1e-9 * max(1.0, abs(end))
    return end - step if towards_lo else end + step


def spec(method, key, value, extra):
    return f"{method}:{key}={value!r}" + (f",{extra}" if extra else "")


def refused(method, key, value, extra, lo, hi, lo_open, hi_open):
    with pytest.raises(UserError) as e:
        make_method(spec(method, key, value, extra))
    lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
    assert str(e.value) == f"{key}={value!r} is out of range: expected a number in {lb}{lo}, {hi}{rb}"


@pytest.mark.parametrize("method,key,lo,hi,lo_open,hi_open,extra", RANGES, ids=[f"{r[0]}-{r[1]}" for r in RANGES])
def test_an_option_is_accepted_up_to_its_ends_and_refused_past_them(method, key, lo, hi, lo_open, hi_open, extra):
    for end, is_open, outward, inward in ((lo, lo_open, inside(lo, True), inside(lo, False)),
                                           (hi, hi_open, inside(hi, False), inside(hi, True))):
        if is_open:
            refused(method, key, end, extra, lo, hi, lo_open, hi_open)
            assert getattr(make_method(spec(method, key, inward, extra)).options, key) == inward
        else:
            assert getattr(make_method(spec(method, key, end, extra)).options, key) == end
            refused(method, key, outward, extra, lo, hi, lo_open, hi_open)


def test_the_table_covers_every_numeric_option_of_every_method():
    import dataclasses
    covered = {(m, k) for m, k, *_ in RANGES}
    numeric = {(name, f.name) for name in METHODS if getattr(METHODS[name], "Options", None)
               for f in dataclasses.fields(METHODS[name].Options) if f.type in ("int", "float", int, float)}
    unbounded = {("lw", "k"), ("llf", "start")}  # checked against the model's groups, not a fixed range
    assert numeric - unbounded <= covered, sorted(numeric - unbounded - covered)


@pytest.mark.parametrize("spec_,message", [
    ("ke:mode=both", "ke.mode='both' is not valid: expected one of 'wels', 'kels'"),
    ("lw:order=sideways", "lw.order='sideways' is not valid: expected one of 'bottom_up', 'top_down'"),
    ("snr:tau_init=30000", "tau_init=30000 is out of range: expected an integer in [1, tau_max=20000]"),
    ("sp:shrink=1.0,step=0.1", "step=0.1 needs shrink < 1 (with shrink=1 nothing is shrunk or perturbed)"),
])
def test_a_word_or_a_combination_out_of_place_is_refused_by_name(spec_, message):
    with pytest.raises(UserError) as e:
        make_method(spec_)
    assert str(e.value) == message
