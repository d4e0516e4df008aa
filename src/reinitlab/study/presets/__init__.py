"""Named studies, one file each. Each is a function returning the mapping a TOML study file holds,
registered with `@preset`; its docstring is what `reinitlab study --presets` prints: the command, what
it costs, and what to expect. The source paper's own studies are in reinitlab/paper/presets.py.

Every preset sets `rounds` explicitly: all methods of one comparison must share the budget (R rounds
after round 0, E epochs each), and the `long` baseline then trains (R+1)*E epochs in one round, the
same compute as every reinit method. Left unset, R would default per architecture to its full LW
budget (K-1), which differs between architectures and makes the paper preset 4x more expensive.
A list of rounds (the budget preset) is one budget per value, each compute-matched the same way.
"""
from __future__ import annotations

from typing import Callable

from ...util.registry import Registry

# this folder's presets (`quick` first: it is `make run`), then the paper's
PRESETS: Registry[Callable[[], dict]] = Registry("preset", packages=("reinitlab.study.presets", "reinitlab.paper.presets"),
                                                 first=("quick",))


def preset(fn: Callable[[], dict]) -> Callable[[], dict]:
    """Register a study function under its own name."""
    return PRESETS.add(fn.__name__, fn)
