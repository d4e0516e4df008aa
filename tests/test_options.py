"""One option mechanism for run settings, method options and analysis options: coerced to the
annotation, unknown keys refused with a did-you-mean, then the options' own validate()."""
from dataclasses import dataclass

import pytest

from reinitlab import TrainConfig, UserError
from reinitlab.analyses.base import Analysis
from reinitlab.methods import METHODS
from reinitlab.util.options import parse_options


@dataclass
class Opts:
    steps: int = 3
    rate: float = 0.5
    mode: str = "a"

    def validate(self):
        if self.steps < 1:
            raise UserError(f"steps={self.steps} is out of range: expected an integer >= 1")


def test_parse_options_coerces_refuses_and_validates():
    assert parse_options(Opts, {"steps": 4.0, "rate": 1}) == Opts(steps=4, rate=1.0)
    with pytest.raises(UserError, match=r"unknown option of thing 'x' 'stpes' \(did you mean 'steps'\?\)"):
        parse_options(Opts, {"stpes": 2}, owner="thing 'x'")
    with pytest.raises(UserError, match=r"x\.rate='fast' has the wrong type: expected a number"):
        parse_options(Opts, {"rate": "fast"}, owner="thing 'x'", prefix="x.")
    with pytest.raises(UserError, match="steps=0 is out of range"):
        parse_options(Opts, {"steps": 0})


def test_analysis_options_are_validated_like_method_options():
    class Toy(Analysis):
        name = "toy"
        summary = "a test analysis"
        Options = Opts

    assert Toy().options(steps=2) == Opts(steps=2)
    with pytest.raises(UserError, match="steps=0 is out of range"):  # analyses did not validate before
        Toy().options(steps=0)
    with pytest.raises(UserError, match=r"unknown option of analysis 'toy' 'rat' \(did you mean 'rate'\?\)"):
        Toy().options(rat=1.0)
    with pytest.raises(UserError, match="keep=1.5 is out of range"):
        METHODS["dnr"](keep=1.5)
    with pytest.raises(UserError, match=r"unknown run setting 'epoch' \(did you mean 'epochs'\?\)"):
        TrainConfig.from_dict({"epoch": 3})
