"""The one registry type: read-only, refuses a duplicate name, names itself in every error, and
answers an unknown name with a close match and the valid names."""
import pytest

from reinitlab.analyses import ANALYSES
from reinitlab.analyses.base import register as register_analysis
from reinitlab.data import DATASETS
from reinitlab.data.registry import register as register_dataset
from reinitlab.methods import METHODS
from reinitlab.methods import register as register_method
from reinitlab.models import ARCHS
from reinitlab.models import register as register_arch
from reinitlab.util.errors import UserError
from reinitlab.util.registry import Registry


def test_lookup_membership_and_order():
    r = Registry("colour")
    r.add("red", 1)
    r.register("green")(2)
    assert list(r) == ["red", "green"] and len(r) == 2 and r["green"] == 2
    assert "red" in r and "blue" not in r and [] not in r
    assert r.get("blue") is None and r.get("red") == 1


def test_unknown_name_is_one_line_with_a_close_match():
    r = Registry("method")
    for name in ("lw", "fc", "baseline"):
        r.add(name, object())
    with pytest.raises(UserError) as e:
        r["lww"]
    assert str(e.value) == "unknown method 'lww' (did you mean 'lw'?); valid: baseline, fc, lw"
    with pytest.raises(KeyError):  # also a KeyError, for callers that catch one
        r["zzzz"]
    assert r.unknown("zzzz") == "unknown method 'zzzz'; valid: baseline, fc, lw"


def test_read_only():
    r = Registry("x")
    with pytest.raises(TypeError):
        r["a"] = 1  # type: ignore[index]


def test_duplicate_name_names_the_registry():
    r = Registry("colour")
    r.add("red", 1)
    with pytest.raises(ValueError, match="colour registry: 'red' is already registered"):
        r.add("red", 2)
    assert r["red"] == 1
    with pytest.raises(ValueError, match="non-empty"):
        r.add("", 3)


def test_overriding_restores_position_and_value():
    r = Registry("colour")
    r.add("red", 1)
    r.add("green", 2)
    with r.overriding("red", 10), r.overriding("blue", 3):
        assert r["red"] == 10 and list(r) == ["red", "green", "blue"]
    assert dict(r) == {"red": 1, "green": 2}


def test_every_registry_of_the_library_refuses_a_duplicate():
    """Before, each registry was a dict: a second registration replaced the first silently."""
    lw = METHODS["lw"]
    with pytest.raises(ValueError, match="method registry: 'lw'"):
        register_method(type("LW2", (lw,), {"name": "lw"}))
    assert METHODS["lw"] is lw
    with pytest.raises(ValueError, match="arch registry: 'cnn'"):
        register_arch("cnn", "another cnn")(lambda **kw: None)
    with pytest.raises(ValueError, match="dataset registry: 'fashion-mnist-small'"):
        register_dataset(DATASETS["fashion-mnist-small"])
    with pytest.raises(ValueError, match="analysis registry: 'margins'"):
        register_analysis(type(ANALYSES["margins"]))
    assert ARCHS["cnn"].description != "another cnn"


@pytest.mark.parametrize("registry,kind", [(METHODS, "method"), (ARCHS, "arch"), (DATASETS, "dataset"),
                                           (ANALYSES, "analysis")])
def test_library_registries_name_themselves(registry, kind):
    assert registry.kind == kind
    with pytest.raises(UserError, match=f"^unknown {kind} 'nope'"):
        registry["nope"]
