"""Method registry. The registry names are the CLI strings and the values stored in results.

A method spec is a name with optional options: "lw", "lw:rescale=false,order=top_down",
"ke:mode=kels,split_rate=0.5". The resolved options of every run are written to its config.
"""
from __future__ import annotations

from ..errors import UserError
from ..options import parse_value
from ..registry import Registry
from .base import Method, NoOptions, ResetContext, warn_budget  # noqa: F401

METHODS: Registry[type[Method]] = Registry("method")


def register(cls: type[Method]) -> type[Method]:
    return METHODS.add(cls.name, cls)


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if name not in METHODS:
        raise UserError(METHODS.unknown(name))
    options = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise UserError(f"method option {part!r} in {spec!r}: expected key=value")
        options[key.strip()] = parse_value(value)
    return name, options


def make_method(spec: str, **options) -> Method:
    """`make_method("lw:rescale=false")` or `make_method("lw", rescale=False)`."""
    name, parsed = parse_spec(spec)
    parsed.update(options)
    return METHODS[name](**parsed)


from . import baseline, fc, llf, ke, dsd, sp, lw, dnr  # noqa: E402,F401,I001  (registration, in SPEC order)
from . import fire, redo, dash, rewind, l2init, swr  # noqa: E402,F401,I001  (SPEC's later methods)
