"""A study definition: axes (lists) crossed into runs, plus run settings shared by every run.

The same keys are used in a TOML study file, in a preset and in `--set key=value`:

    datasets, archs, methods, train_sizes, label_noise, seeds   the axes (non-empty lists; label_noise
                                                              may be left out: [0.0])
    name, description, analyses                               metadata (analyses: names run on every
                                                              finished run, see study/analysis_step.py)
    epochs, rounds, width, lr, ...                            any `train` setting, shared by all runs

Everything is checked here, before a folder is written: unknown keys (with a did-you-mean), wrong
types, empty or duplicated axes. Range checks of the settings and the names of datasets, archs and
methods are checked run by run in `expand`.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..options import coerce, parse_assignment, tomllib, unknown_key_message
from ..errors import UserError, unknown_message

# Run fields that a study sweeps: they are axes here, never shared settings.
AXIS_OF_FIELD = {"dataset": "datasets", "arch": "archs", "method": "methods", "train_size": "train_sizes",
                 "seed": "seeds"}
AXES = ["datasets", "archs", "methods", "train_sizes", "label_noise", "seeds"]
# An axis a study may leave out: no label noise, like a single run. Seeds stay required: how many
# seeds a comparison has is a decision, not a default.
AXIS_DEFAULTS = {"label_noise": [0.0]}
META = ["name", "description", "analyses"]
# method_options is resolved from the method spec; a study gives options inside the spec.
SETTINGS = [f for f in TrainConfig.field_names()
            if f not in AXIS_OF_FIELD and f not in ("label_noise", "method_options")]
FULL = "full"  # train_sizes entry: the whole training pool left after the validation split


@dataclass
class StudyDefinition:
    """A resolved, type-checked study. `settings` holds only the keys the user gave, so the
    TrainConfig defaults stay visible as defaults in study.json."""

    name: str
    datasets: list[str]
    archs: list[str]
    methods: list[str]
    train_sizes: list[int | None]  # None = the full training pool
    label_noise: list[float]
    seeds: list[int]
    settings: dict[str, Any] = field(default_factory=dict)
    analyses: list[str] = field(default_factory=list)
    description: str = ""
    source: str = ""  # "preset quick" or the file path

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str, overrides: list[str] = (),
                     default_name: str = "study") -> "StudyDefinition":
        """Build from a study file's or preset's mapping plus `--set key=value` strings."""
        values = dict(values)
        for text in overrides:
            key, value = parse_assignment(text)
            _check_key(key, f"--set {text!r}")
            values[key] = value
        for key in values:
            _check_key(key, source)
        for key, default in AXIS_DEFAULTS.items():
            values.setdefault(key, default)
        missing = [a for a in AXES if a not in values]
        if missing:
            raise UserError(f"{source}: missing axis {missing[0]!r} (a non-empty list); every study needs "
                            f"{', '.join(a for a in AXES if a not in AXIS_DEFAULTS)}")
        hints = typing.get_type_hints(TrainConfig)
        settings = {k: coerce(k, values[k], hints[k]) for k in SETTINGS if k in values}
        name = values.get("name", default_name)
        return cls(
            name=_string(name, "name"),
            datasets=_axis(values, "datasets", str),
            archs=_axis(values, "archs", str),
            methods=_axis(values, "methods", str),
            train_sizes=_axis(values, "train_sizes", _train_size),
            label_noise=_axis(values, "label_noise", lambda v: coerce("label_noise", v, float)),
            seeds=_axis(values, "seeds", lambda v: coerce("seeds", v, int)),
            settings=settings,
            analyses=_analyses(values.get("analyses", [])),
            description=_string(values.get("description", ""), "description"),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train_sizes"] = [FULL if s is None else s for s in self.train_sizes]
        return d

    def axis_sizes(self) -> str:
        parts = [(len(self.datasets), "dataset"), (len(self.archs), "arch"), (len(self.train_sizes), "size"),
                 (len(self.label_noise), "noise level"), (len(self.methods), "method"), (len(self.seeds), "seed")]
        return " x ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in parts)


def load_definition(preset_or_file: str, overrides: list[str] = ()) -> StudyDefinition:
    """A preset name (see presets.py) or a path to a TOML study file."""
    from .presets import PRESETS
    if preset_or_file in PRESETS:
        return StudyDefinition.from_mapping(PRESETS[preset_or_file](), f"preset {preset_or_file}", overrides,
                                             default_name=preset_or_file)
    path = Path(preset_or_file).expanduser()
    if not path.exists():
        raise UserError(f"{preset_or_file!r} is neither a preset ({', '.join(PRESETS)}) nor an existing study "
                        "file (.toml)")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a preset name or a .toml study file")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read: {e}") from None
    return StudyDefinition.from_mapping(values, str(path), overrides, default_name=path.stem)


# ---- checks ---------------------------------------------------------------------------------
def valid_keys() -> list[str]:
    return AXES + META + SETTINGS


def _check_key(key: str, where: str) -> None:
    if key in AXIS_OF_FIELD:
        axis = AXIS_OF_FIELD[key]
        raise UserError(f"{where}: {key!r} is swept in a study: use the axis {axis} = [...]")
    if key == "method_options":
        raise UserError(f"{where}: method options go in the method spec, e.g. methods = [\"lw:rescale=false\"]")
    if key not in valid_keys():
        raise UserError(f"{where}: " + unknown_key_message(key, valid_keys(), "study key"))


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{key}={value!r} has the wrong type: expected a string")
    return value


def _list(value: Any, key: str, item, allow_empty: bool = False) -> list:
    if not isinstance(value, list):
        raise UserError(f"{key}={value!r} has the wrong type: expected a list, e.g. {key}=[{_example(value)}]")
    if not value and not allow_empty:
        raise UserError(f"{key}=[] is empty: an axis needs at least one value")
    out = []
    for v in value:
        if item is str:
            v = _string(v, key).strip()
            if not v:
                raise UserError(f"{key}: an empty name in {value!r}")
        else:
            v = item(v)
        if v in out:
            raise UserError(f"{key}: {v!r} is listed twice")
        out.append(v)
    return out


def _analyses(value: Any) -> list[str]:
    names = _list(value, "analyses", str, allow_empty=True)
    if names:
        from ..analyses.base import ANALYSES
        from .. import analyses  # noqa: F401  (registers every analysis)
        bad = [n for n in names if n not in ANALYSES]
        if bad:
            raise UserError("analyses: " + unknown_message("analysis", bad[0], ANALYSES, sort=False))
    return names


def _axis(values: dict, key: str, item) -> list:
    return _list(values[key], key, item)


def _train_size(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() in (FULL, "all"):
        return None
    size = coerce("train_sizes", value, int)
    if size < 1:
        raise UserError(f"train_sizes: {size} is out of range: expected an integer >= 1 or \"full\"")
    return size


def _example(value: Any) -> str:
    """The items of a value that should have been a list, written as the inside of one: '[0,1' and
    '0 1' both give '0,1' (not '[0,1'), so the suggestion is a valid list."""
    if not isinstance(value, str):
        return repr(value)
    return ",".join(part for part in re.split(r"[\s,\[\]]+", value) if part)
