"""Named, ordered parameter groups of a model: stem, block1..blockK, head.

Methods speak only of groups, never of layer positions. Groups come from, in order of preference:
an explicit spec (group name -> module-name prefixes, or regexes written "re:<pattern>"; a parameter
held by the model itself, not by a submodule, is named by its own name), the model's own
`group_spec` attribute (every registry architecture has one), or the automatic default documented
in `auto_spec`. `print(groups)` shows which modules landed in which group.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch.nn as nn

from ..util.errors import UserError

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class Groups:
    names: list[str]  # bottom to top; names[0] is the stem, names[-1] the head
    modules: dict[str, list[str]]  # group -> every module (qualified name) it owns
    params: dict[str, list[str]]  # group -> parameter names, in model order
    output: dict[str, str]  # group -> the module whose output is the group's output
    numel: dict[str, int] = field(default_factory=dict)  # parameter name -> element count
    kinds: dict[str, str] = field(default_factory=dict)  # module name -> class name, for the table

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

    def units(self, name: str) -> list[str]:
        """What a group holds, as a user names it: its outermost modules, then the model's own
        (root) parameters it owns."""
        mods = self.modules[name]
        tops = [m for m in mods if not any(m.startswith(o + ".") for o in mods if o != m)]
        return tops + [p for p in self.params[name] if "." not in p]

    def parameter_count(self, name: str) -> int:
        return sum(self.numel.get(p, 0) for p in self.params[name])

    def describe(self) -> list[dict]:
        """One record per group, bottom to top: for programs (`table()` is for people)."""
        total = sum(self.parameter_count(g) for g in self.names) or 1
        return [{"group": g, "modules": len(self.modules[g]), "units": self.units(g), "params": self.params[g],
                 "parameters": self.parameter_count(g), "share": self.parameter_count(g) / total,
                 "output": self.output[g]} for g in self.names]

    def table(self, width: int = 60) -> str:
        """group | what it holds (outermost modules, their class) | parameters | share | output module."""
        rows = [(d["group"], _abbrev([f"{u} ({self.kinds.get(u, 'parameter')})" for u in d["units"]], width),
                 f"{d['parameters']:,}", _percent(d["share"]), d["output"]) for d in self.describe()]
        total = sum(self.parameter_count(g) for g in self.names)
        head = ("group", "modules", "parameters", "share", "output")
        foot = ("total", f"{len(self.names)} groups", f"{total:,}", "100%", "")
        cols = list(zip(head, *rows, foot, strict=True))
        w = [max(len(c) for c in col) for col in cols]
        right = {2, 3}  # numbers align right

        def line(cells):
            return "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i]) for i, c in enumerate(cells)).rstrip()
        rule = "  ".join("-" * x for x in w)
        return "\n".join([line(head), rule, *(line(r) for r in rows), rule, line(foot)])

    def __str__(self) -> str:
        return self.table()


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%" if share >= 0.001 or share == 0 else "<0.1%"


def _abbrev(units: list[str], width: int) -> str:
    """Units joined by ', ', cut to about `width` characters with a count of the rest."""
    text = ", ".join(units)
    if len(text) <= width:
        return text
    shown: list[str] = []
    for u in units:
        if len(", ".join([*shown, u])) > width - 10 and shown:
            break
        shown.append(u)
    return ", ".join(shown) + f" +{len(units) - len(shown)} more"


def _matches(pattern: str, name: str) -> bool:
    """A module matches a pattern when it, or one of its ancestors, is named by it."""
    if pattern.startswith("re:"):
        parts = name.split(".")
        return any(re.fullmatch(pattern[3:], ".".join(parts[:i])) for i in range(1, len(parts) + 1))
    return name == pattern or name.startswith(pattern + ".")


def _names_root(pattern: str, param: str) -> bool:
    """A root parameter (held by the model itself) is named by its own name, or a regex of it."""
    return re.fullmatch(pattern[3:], param) is not None if pattern.startswith("re:") else pattern == param


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
    root_params = [n for n, _ in model.named_parameters(recurse=False)]
    modules: dict[str, list[str]] = {g: [] for g in names}
    owner: dict[str, str] = {}
    for m in all_modules:
        for g in names:
            if any(_matches(p, m) for p in spec[g]):
                modules[g].append(m)
                owner[m] = g
                break
    root_owner = {}
    for r in root_params:
        for g in names:
            if any(_names_root(p, r) for p in spec[g]):
                root_owner[r] = g
                break
    for g in names:
        for p in spec[g]:
            if not any(_matches(p, m) for m in all_modules) and not any(_names_root(p, r) for r in root_params):
                raise UserError(f"group {g!r}: pattern {p!r} matches no module and no root parameter of the model")
    params: dict[str, list[str]] = {g: [] for g in names}
    numel: dict[str, int] = {}
    orphans = []
    for pname, tensor in model.named_parameters():
        numel[pname] = tensor.numel()
        mod = pname.rpartition(".")[0]
        g = owner.get(mod) if mod else root_owner.get(pname)
        if g is None:
            orphans.append(pname)
        else:
            params[g].append(pname)
    if orphans:
        roots = [o for o in orphans if "." not in o]
        how = ("add their modules to a group" if not roots else
               f"add their modules to a group; a root parameter ({roots[0]}) is named by its own name")
        raise UserError(f"parameters in no group: {', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}; {how}")
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
        if not tops:
            raise UserError(f"group {g!r} holds only root parameters ({', '.join(params[g])}) and so has no output "
                            "(where LW standardizes, where probes read features); put them in a group with a module")
        output[g] = tops[-1]
    groups = Groups(names=names, modules=modules, params=params, output=output, numel=numel)
    mods = dict(model.named_modules())
    groups.kinds = {u: type(mods[u]).__name__ for g in names for u in groups.units(g) if u in mods}
    return groups


def auto_spec(model: nn.Module) -> dict[str, list[str]]:
    """The automatic default for a user's own model.

    1. Units are the model's top-level children in registration order; a container child
       (Sequential, ModuleList, ModuleDict) is replaced by its own children.
    2. Units without parameters are dropped; a unit with parameters but no conv or linear layer
       (a norm layer) joins the unit before it, so conv1 + bn1 form one group.
    3. The unit holding the last Linear layer, and everything after it, is the head; the first
       unit is the stem; units in between are block1..blockN.
    4. Parameters held by the model itself (a bare `nn.Parameter` attribute: an input scale, a
       positional embedding) join the stem: such parameters usually act on the input, and no module
       initializer can re-draw them (a fresh draw of one is its current value unless the model
       defines `reset_parameters` or `init_module`), so they belong in the group that the fewest
       methods re-draw (LW keeps the stem in every round; fc and llf never touch it). Name one in
       a spec to put it elsewhere.
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
    spec = {"stem": units[0] + [n for n, _ in model.named_parameters(recurse=False)]}
    for i, unit in enumerate(units[1:head_at], start=1):
        spec[f"block{i}"] = unit
    spec["head"] = [u for unit in units[head_at:] for u in unit]
    return spec
