"""A study definition: axes (lists) crossed into runs, plus run settings shared by every run.

The same keys are used in a TOML study file, in a preset and in `--set key=value`:

    datasets, archs, methods, train_sizes, label_noise, seeds   the axes (non-empty lists; label_noise
                                                              may be left out: [0.0])
    name, description, analyses, tune                         metadata (analyses: names run on every
                                                              finished run, see study/analysis_step.py;
                                                              tune: extra axes a report may tune over)
    variants                                                  a list of tables, each overriding keys of
                                                              the rest: the study is the union of them
    epochs, rounds, width, lr, ...                            any `train` setting: one value is shared
                                                              by all runs, a list is an extra axis

Variants join grids that cannot share settings (permuted tasks of 1 epoch on 5,000 examples beside
random-label tasks of 40 epochs on 500): each `[[variants]]` table overrides any key of the rest
(`--set` overrides both), and every key a variant sets becomes an axis of one value in each, so the
variants' runs lie in distinct folders (".../epochs=1,protocol=permuted,rounds=199/...").

An extra axis (`rounds = [1, 2, 3]`, `weight_decay = [5e-4, 5e-3]`) crosses into runs like the six
axes do; a one-element list is still an axis (its value is part of the run folders' path). The
settings in FIXED cannot vary within a study: they change where or how fast a run computes, or
what it logs, not what it learns, or (data_seed) they would break the seed pairing of methods.

Everything is checked here, before a folder is written: unknown keys (with a did-you-mean), wrong
types, empty or duplicated axes (values compared after canonicalizing, so 5e-3 and 0.005 are one
value), a list for a fixed setting, a `tune` name that is not an extra axis. Range checks of the
settings and the names of datasets, archs and methods are checked run by run in `expand`.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..train.config import TrainConfig
from ..util.errors import UserError, unknown_message
from ..util.options import coerce, parse_assignment, parse_assignments, tomllib, unknown_key_message

# Run fields that a study sweeps: they are axes here, never shared settings.
AXIS_OF_FIELD = {"dataset": "datasets", "arch": "archs", "method": "methods", "train_size": "train_sizes",
                 "seed": "seeds"}
AXES = ["datasets", "archs", "methods", "train_sizes", "label_noise", "seeds"]
# An axis a study may leave out: no label noise, like a single run. Seeds stay required: how many
# seeds a comparison has is a decision, not a default.
AXIS_DEFAULTS = {"label_noise": [0.0]}
META = ["name", "description", "analyses", "tune", "variants"]
# method_options is resolved from the method spec; a study gives options inside the spec.
SETTINGS = [f for f in TrainConfig.field_names()
            if f not in AXIS_OF_FIELD and f not in ("label_noise", "method_options")]
FULL = "full"  # train_sizes entry: the whole training pool left after the validation split
# Settings one study cannot vary, and why (the reason is part of the error message).
FIXED = {
    "device": "the machine a run uses, not what it learns",
    "precision": "a property of the machine's arithmetic; compare precisions in separate studies",
    "threads": "a speed setting",
    "compile": "a speed setting",
    "channels_last": "a speed setting",
    "eval_batch_size": "a speed setting",
    "data_dir": "where the files are, not what they hold",
    "norm_log": "what a run logs, not what it learns",
    "round_log": "what a run logs, not what it learns",
    "data_seed": "methods are compared on paired seeds; vary the seeds axis instead",
}


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
    # run settings given as lists, by key in sorted order; each list in the order given
    extra_axes: dict[str, list] = field(default_factory=dict)
    tune: list[str] = field(default_factory=list)  # extra axes a report tunes over (validation-selected)
    source: str = ""  # "preset quick" or the file path
    variants: list["StudyDefinition"] = field(default_factory=list)  # the study is their union, if any

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str, overrides: list[str] = (),
                     default_name: str = "study") -> "StudyDefinition":
        """Build from a study file's or preset's mapping plus `--set key=value` strings."""
        values = dict(values)
        if "variants" in values:
            return cls._from_variants(values, source, overrides, default_name)
        changed = []
        parse_assignments(overrides)  # a key given twice with different values is refused
        for text in overrides:
            key, value = parse_assignment(text)
            _check_key(key, f"--set {text!r}")
            if values.get(key) != value:
                changed.append(key)
            values[key] = value
        if values.get("description") and changed and "description" not in changed:
            # a preset's text counts its methods and sizes: say which of them --set has changed since
            values["description"] = f"{values['description']} (before --set {', '.join(dict.fromkeys(changed))})"
        for key in values:
            _check_key(key, source)
        for key, default in AXIS_DEFAULTS.items():
            values.setdefault(key, default)
        missing = [a for a in AXES if a not in values]
        if missing:
            raise UserError(f"{source}: missing axis {missing[0]!r} (a non-empty list); every study needs "
                            f"{', '.join(a for a in AXES if a not in AXIS_DEFAULTS)}")
        hints = typing.get_type_hints(TrainConfig)
        settings, extra = {}, {}
        for k in SETTINGS:
            if k not in values:
                continue
            if isinstance(values[k], list):
                extra[k] = _setting_axis(k, values[k], hints[k])
            else:
                settings[k] = coerce(k, values[k], hints[k])
        extra = dict(sorted(extra.items()))
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
            extra_axes=extra,
            tune=_tune(values.get("tune", []), extra),
        )

    @classmethod
    def _from_variants(cls, values: dict[str, Any], source: str, overrides: list[str],
                       default_name: str) -> "StudyDefinition":
        variants = values.pop("variants")
        if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) for v in variants):
            raise UserError(f"{source}: variants must be a non-empty list of tables ([[variants]] in TOML)")
        varied = sorted({k for v in variants for k in v})
        for k in varied:
            _check_key(k, f"{source} variants")
            if k in META:
                raise UserError(f"{source} variants: {k!r} cannot differ between variants; set it once for the study")
        forced = {parse_assignment(t)[0] for t in overrides}
        subs = []
        for i, v in enumerate(variants):
            merged = {**values, **v}
            for k in varied:  # every key a variant sets is an axis (its folder path) in each variant
                if k not in forced and k in merged and not isinstance(merged[k], list):
                    merged[k] = [merged[k]]
            missing = [k for k in varied if k not in merged]
            if missing:
                raise UserError(f"{source} variant {i + 1}: {missing[0]!r} is set by another variant but not by "
                                "this one nor by the study; give it here too")
            subs.append(cls.from_mapping(merged, f"{source} variant {i + 1}", overrides, default_name))
        first = subs[0]

        def union(key: str) -> list:
            out: list = []
            for s in subs:
                out += [x for x in getattr(s, key) if x not in out]
            return out
        extra: dict[str, list] = {}
        for s in subs:
            for k, vals in s.extra_axes.items():
                extra.setdefault(k, [])
                extra[k] += [x for x in vals if x not in extra[k]]
        return cls(name=first.name, datasets=union("datasets"), archs=union("archs"), methods=union("methods"),
                   train_sizes=union("train_sizes"), label_noise=union("label_noise"), seeds=union("seeds"),
                   settings={k: v for k, v in first.settings.items() if all(s.settings.get(k) == v for s in subs)},
                   analyses=first.analyses, description=first.description, source=source,
                   extra_axes=dict(sorted(extra.items())), tune=first.tune, variants=subs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train_sizes"] = [FULL if s is None else s for s in self.train_sizes]
        d["variants"] = [v.to_dict() for v in self.variants]
        if not d["variants"]:  # study.json of a study without variants stays as it was
            del d["variants"]
        return d

    def axis_sizes(self) -> str:
        if self.variants:
            return " + ".join(f"({v.axis_sizes()})" for v in self.variants)
        parts = [(len(self.datasets), "dataset"), (len(self.archs), "arch"), (len(self.train_sizes), "size"),
                 (len(self.label_noise), "noise level"), (len(self.methods), "method"), (len(self.seeds), "seed")]
        parts[4:4] = [(len(v), k) for k, v in self.extra_axes.items()]
        return " x ".join(f"{n} {what}{'s' if n != 1 and what in _COUNTED else ''}" for n, what in parts)


_COUNTED = ("dataset", "arch", "size", "noise level", "method", "seed")


def value_text(value: Any) -> str:
    """The canonical spelling of an axis value, the same for every way of writing it: 5e-3 and
    0.005 are "0.005", 1 and 1.0 for a float setting are "1". Floats use Python's shortest
    round-trip form, so two different numbers never share a spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return str(value)


def axes_changed(old: dict, defn: StudyDefinition) -> str:
    """Why a study folder whose study.json holds the definition `old` cannot go on with `defn`, or
    "". An extra axis may gain or lose values between starts (like seeds), but a setting may not
    turn from one shared value into an axis or back: the run folders' paths would change."""
    before = old.get("extra_axes") or {}
    for key in sorted(set(before) | set(defn.extra_axes)):
        if key in before and key not in defn.extra_axes:
            return (f"{key} is an axis ({key} = {json.dumps(before[key])}); keep it a list (a one-value list "
                    f"such as {key} = [{json.dumps(before[key][0])}] is fine) or use another --out folder")
        if key not in before:
            return (f"{key} is one value shared by all runs, not an axis; a list would move the run folders: "
                    "use another --out folder")
    return ""


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


def _setting_axis(key: str, value: list, tp: Any) -> list:
    """A run setting given as a list: an extra axis of typed, canonical, distinct values."""
    if key in FIXED:
        raise UserError(f"{key}={value!r}: {key} cannot vary within a study ({FIXED[key]}); give one value")
    if not value:
        raise UserError(f"{key}=[] is empty: an axis needs at least one value")
    out, seen = [], {}
    for v in value:
        typed = coerce(key, v, tp)
        if typed is None:
            raise UserError(f"{key}: none cannot be an axis value; list the values themselves")
        text = value_text(typed)
        if text in seen:
            same = "" if repr(seen[text]) == repr(v) else f" ({seen[text]!r} and {v!r} are one value)"
            raise UserError(f"{key}: {text} is listed twice{same}")
        seen[text] = v
        out.append(typed)
    return out


def _tune(value: Any, extra: dict[str, list]) -> list[str]:
    names = _list(value, "tune", str, allow_empty=True)
    for n in names:
        if n not in extra:
            varied = ", ".join(extra) or "none here"
            raise UserError(f"tune: {n!r} is not an extra axis of this study; tune names run settings given "
                            f"as lists, e.g. weight_decay = [5e-4, 5e-3] (extra axes: {varied})")
    return names


def _analyses(value: Any) -> list[str]:
    names = _list(value, "analyses", str, allow_empty=True)
    if names:
        from .. import analyses  # noqa: F401  (registers every analysis)
        from ..analyses.base import ANALYSES
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
