import pytest

from reinitlab.methods import make_method, parse_spec
from reinitlab.train.config import TrainConfig
from reinitlab.util.errors import UserError
from reinitlab.util.options import parse_assignment, parse_value


def test_parse_value_toml_and_bare():
    assert parse_value("3") == 3
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("flip+crop") == "flip+crop"
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("[lw,fc]") == ["lw", "fc"]
    assert parse_assignment("epochs=4") == ("epochs", 4)


@pytest.mark.parametrize("key,value,fragment", [
    ("epochs", "three", "wrong type"),
    ("epochs", 0, "out of range"),
    ("lr", -1.0, "out of range"),
    ("nesterov", 1, "wrong type"),
    ("augment", "rotate", "not valid"),
    ("label_noise", 1.0, "out of range"),
    ("epoch", 3, "did you mean 'epochs'"),
])
def test_bad_values_name_key_and_valid(key, value, fragment):
    with pytest.raises(UserError) as e:
        TrainConfig.from_dict({key: value})
    msg = str(e.value)
    assert fragment in msg and key in msg and "\n" not in msg


def test_int_accepted_for_float_and_none_for_optional():
    cfg = TrainConfig.from_dict({"lr": 1, "train_size": "none", "width": 0.5})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.train_size is None


def test_method_spec_options_are_typed_and_checked():
    assert parse_spec("lw:rescale=false,order=top_down") == ("lw", {"rescale": False, "order": "top_down"})
    m = make_method("ke:mode=kels,split_rate=0.5")
    assert m.options.mode == "kels" and m.options.split_rate == 0.5
    for bad, fragment in [("nope", "unknown method 'nope'"), ("lw:rescal=false", "did you mean 'rescale'"),
                          ("ke:split_rate=1.5", "out of range"), ("lw:order=sideways", "not valid"),
                          ("baseline:x=1", "takes no options"), ("fc:redrw=init", "did you mean 'redraw'"), ("fc:redraw=new", "expected one of 'fresh', 'init', 'rewind', 'peer'"), ("fc:rewind_epoch=2", "only with redraw=rewind"), ("lw:rescale", "expected key=value")]:
        with pytest.raises(UserError, match=fragment):
            make_method(bad)
