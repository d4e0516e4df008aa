"""Named, ordered parameter groups of a model: stem, block1..blockK, head.

Methods speak only of groups, never of layer positions. Groups come from, in order of preference:
an explicit spec (group name -> module-name prefixes, or regexes written "re:<pattern>"), the
model's own `group_spec` attribute (every registry architecture has one), or the automatic default
documented in `auto_spec`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch.nn as nn

from .errors import UserError

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class Groups:
    names: list[str]  # bottom to top; names[0] is the stem, names[-1] the head
    modules: dict[str, list[str]]  # group -> every module (qualified name) it owns
    params: dict[str, list[str]]  # group -> parameter names, in model order
    output: dict[str, str]  # group -> the module whose output is the group's output

    @property
    def head(self) -> str:
        return self.names[-1]

    @property
    def K(self) -> int:
        """Index of the head; the blocks are 1..K-1 and LW's full budget is K-1 rounds."""
        return len(self.names) - 1

    def index(self, name: str) -> int:
        if name not in self.names:
            raise UserError(f"unknown group {name!r}; this model's groups: {', '.join(self.names)}")
        return self.names.index(name)

    def group_of(self) -> dict[str, str]:
        """parameter name -> group name"""
        return {p: g for g in self.names for p in self.params[g]}

    def params_from(self, k: int) -> list[str]:
        return [p for g in self.names[k:] for p in self.params[g]]

    def describe(self) -> list[dict]:
        return [{"group": g, "modules": len(self.modules[g]), "params": self.params[g]} for g in self.names]


def _matches(pattern: str, name: str) -> bool:
    """A module matches a pattern when it, or one of its ancestors, is named by it."""
    if pattern.startswith("re:"):
        parts = name.split(".")
        return any(re.fullmatch(pattern[3:], ".".join(parts[:i])) for i in range(1, len(parts) + 1))
    return name == pattern or name.startswith(pattern + ".")


def groups_of(model: nn.Module, spec: dict[str, list[str] | str] | None = None,
              outputs: dict[str, str] | None = None) -> Groups:
    """Resolve `spec` (or the model's `group_spec`, or the automatic default) against `model`.

    Every parameter must fall in exactly one group (a parameter outside all groups would silently
    never be reset); the first matching group in order wins for overlapping patterns.
    """
    if spec is None:
        spec = getattr(model, "group_spec", None) or auto_spec(model)
    spec = {g: [p] if isinstance(p, str) else list(p) for g, p in spec.items()}
    if len(spec) < 2:
        raise UserError(f"a model needs at least two groups (stem and head); got {list(spec)}")
    names = list(spec)
    all_modules = [n for n, _ in model.named_modules() if n]
    modules: dict[str, list[str]] = {g: [] for g in names}
    owner: dict[str, str] = {}
    for m in all_modules:
        for g in names:
            if any(_matches(p, m) for p in spec[g]):
                modules[g].append(m)
                owner[m] = g
                break
    for g in names:
        for p in spec[g]:
            if not any(_matches(p, m) for m in all_modules):
                raise UserError(f"group {g!r}: pattern {p!r} matches no module of the model")
    params: dict[str, list[str]] = {g: [] for g in names}
    orphans = []
    for pname, _ in model.named_parameters():
        mod = pname.rpartition(".")[0]
        g = owner.get(mod)
        if g is None:
            orphans.append(pname)
        else:
            params[g].append(pname)
    if orphans:
        raise UserError(f"parameters in no group: {', '.join(orphans[:5])}"
                        f"{' ...' if len(orphans) > 5 else ''}; add their modules to a group")
    for g in names:
        if not params[g]:
            raise UserError(f"group {g!r} owns no parameters")
    output = {}
    for g in names:
        if outputs and g in outputs:
            output[g] = outputs[g]
            continue
        # The group's outermost matched modules; the last registered one produces its output.
        tops = [m for m in modules[g] if not any(m.startswith(o + ".") for o in modules[g] if o != m)]
        output[g] = tops[-1]
    return Groups(names=names, modules=modules, params=params, output=output)


def auto_spec(model: nn.Module) -> dict[str, list[str]]:
    """The automatic default for a user's own model.

    1. Units are the model's top-level children in registration order; a container child
       (Sequential, ModuleList, ModuleDict) is replaced by its own children.
    2. Units without parameters are dropped; a unit with parameters but no conv or linear layer
       (a norm layer) joins the unit before it, so conv1 + bn1 form one group.
    3. The unit holding the last Linear layer, and everything after it, is the head; the first
       unit is the stem; units in between are block1..blockN.
    """
    units: list[list[str]] = []
    for name, child in model.named_children():
        kids = list(child.named_children()) if isinstance(child, _CONTAINERS) else []
        candidates = [(f"{name}.{k}", c) for k, c in kids] if kids else [(name, child)]
        for uname, mod in candidates:
            if not any(True for _ in mod.parameters()):
                continue
            weighted = isinstance(mod, _WEIGHTED) or any(isinstance(m, _WEIGHTED) for m in mod.modules())
            if not weighted and units:
                units[-1].append(uname)
            else:
                units.append([uname])
    if len(units) < 2:
        raise UserError("could not derive groups automatically (fewer than two parameterized units); "
                        "pass groups as {name: [module prefixes]}")
    mods = dict(model.named_modules())
    head_at = len(units) - 1
    for i, unit in enumerate(units):
        if any(isinstance(m, nn.Linear) for u in unit for m in mods[u].modules()):
            head_at = i
    head_at = max(head_at, 1)
    spec = {"stem": units[0]}
    for i, unit in enumerate(units[1:head_at], start=1):
        spec[f"block{i}"] = unit
    spec["head"] = [u for unit in units[head_at:] for u in unit]
    return spec
