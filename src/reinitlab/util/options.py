"""Typed options: the one way run settings, method options, analysis options and study keys are
parsed and checked.

An options type is a dataclass whose annotations say what each key accepts (Literal, bool, int,
float, str, lists and unions of these, None). `parse_options(Options, values, owner)` coerces every
value to its annotation, refuses an unknown key with the closest valid name, and calls the
dataclass's `validate()` for the range checks, so every bad input is one line naming the key, the
value and what is valid.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import UserError, unknown_message

T = TypeVar("T")


def parse_options(cls: type[T], values: Mapping[str, Any], owner: str = "", prefix: str = "",
                  noun: str = "option") -> T:
    """An instance of the dataclass `cls` from `values`, checked.

    `owner` names whose options these are in messages ("method 'lw'", "analysis 'margins'"; empty for
    run settings), `prefix` goes before a key in a message about its value ("lw." -> "lw.rescale='x'
    has the wrong type"), `noun` is what one key is called ("option", "run setting")."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    parsed = {key: option_value(hints, names, key, value, owner, prefix, noun) for key, value in values.items()}
    opts = cls(**parsed)
    check = getattr(opts, "validate", None)
    if check is not None:
        check()
    return opts


def option_value(hints: dict[str, Any], names: list[str], key: str, value: Any, owner: str = "", prefix: str = "",
                 noun: str = "option") -> Any:
    """One key of an options type, coerced to its annotation (see `parse_options`)."""
    if key not in hints:
        if not names and owner:
            raise UserError(f"{owner} takes no {noun}s; got {key!r}")
        raise UserError(unknown_key_message(key, names, f"{noun} of {owner}" if owner else noun))
    return coerce(f"{prefix}{key}", value, hints[key])


def parse_value(text: str) -> Any:
    """A `--set` value: TOML if it parses (1, 0.5, true, "x", [1, 2]), else a bare string.
    Lists of bare words may be written [a,b]."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [parse_value(part) for part in _split_top(inner)] if inner else []
    return text


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets, so [lw:rescale=false,order=top_down] stays whole
    only where quoted; bare lists of plain words are the common case."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected key=value")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise UserError(f"--set {text!r}: the key is empty")
    return key, parse_value(value)


def parse_assignments(items: typing.Iterable[str] | None, flag: str = "--set") -> dict[str, Any]:
    """`KEY=VALUE` strings (a repeatable flag's values) as a dict, in the order given. A key given
    twice with different values is refused, never resolved by position: `--set epochs=3 --set
    epochs=5` says which one was meant nowhere."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for text in items or []:
        key, value = parse_assignment(text)
        if key in out and not same_value(out[key], value):
            raise UserError(f"{flag} {given[key]} and {flag} {text} disagree; give {key} once")
        out[key], given[key] = value, text
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equal as settings: 3 and 3.0 are, true and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def unknown_key_message(key: str, valid: list[str], what: str) -> str:
    return unknown_message(what, key, valid, sort=False)  # keys are listed in their own order


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is getattr(types, "UnionType", None)


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if _is_union(origin):
        names = [type_name(a) for a in get_args(tp) if a is not type(None)]
        return " or ".join(names) + " or none"
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    return getattr(tp, "__name__", str(tp))


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`; convert only where no information is lost."""

    def bad() -> UserError:
        return UserError(f"{key}={value!r} has the wrong type: expected {type_name(tp)}")

    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise UserError(f"{key}={value!r} is not valid: expected {type_name(tp)}")
        return value
    if _is_union(origin):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            try:
                return coerce(key, value, a)
            except UserError:
                continue
        raise bad()
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad()
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"{key}={value!r} is not a finite number")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return value
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        (inner,) = get_args(tp)
        return [coerce(key, v, inner) for v in value]
    raise TypeError(f"unsupported annotation {tp!r} for {key}")
