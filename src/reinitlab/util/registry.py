"""One small registry type for methods, architectures, datasets, analyses, presets, report parts.

    METHODS = Registry("method", packages=("reinitlab.methods",))
    @METHODS.register("lw")            # or METHODS.add("lw", LW)
    class LW(Method): ...
    METHODS["lww"] ->  UserError: unknown method 'lww' (did you mean 'lw'?); valid: baseline, ..., lw

A registry is a read-only mapping name -> value in registration order. Registering a name twice is
an error naming the registry and the name: a second method silently replacing the first would
change every study that names it.

Entries are found, not listed: on first use a registry imports every module of its `packages`
(those named in `first` first, the rest in alphabetical order; a module named there is imported
itself), and each module registers what it defines. Adding a method, dataset or report part is adding its file.

Other installed packages add entries the same way (plugins): a registry made with
`entry_points="reinitlab.methods"` then also imports every module that an installed distribution
names in that entry-point group, after the built-in ones, so a plugin's entries come after them.
A plugin that fails to import (or registers a name already taken) is named in one warning line and
left out whole; the rest of the registry still works.

    # the plugin's pyproject.toml
    [project.entry-points."reinitlab.methods"]
    mine = "reinitlab_mine.method"      # a module that registers its method when imported
"""
from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import pkgutil
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Callable, Generic, TypeVar

from .errors import ReinitlabWarning, UserError, unknown_message

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A UserError that is also a KeyError, so `Mapping.get`, `in` and callers catching KeyError
    keep working; printed as its message (a KeyError alone would print it quoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    def __init__(self, kind: str, packages: tuple[str, ...] = (), first: tuple[str, ...] = (),
                 entry_points: str | None = None):
        self.kind = kind  # "method", "arch", ...: named in every error
        self._items: dict[str, T] = {}
        self._packages, self._first = packages, first
        self.entry_points = entry_points  # the entry-point group plugins register in, or None
        self._found = not packages and not entry_points
        self._plugins: dict[str, str] = {}  # plugin module -> "distribution version", for provenance
        self._rank: dict[str, int] = {}  # module -> its place in the discovery order
        self._origin: dict[str, tuple[str, int]] = {}  # name -> (the module that registered it, sequence)
        self._seq = itertools.count()

    def _find(self) -> None:
        """Import the modules of `packages` once (they register themselves). The registry's order is
        this discovery order, whatever order the modules were first imported in; entries from
        elsewhere (a plugin, a test) come after, in registration order."""
        if self._found:
            return
        self._found = True
        modules = []
        for package in self._packages:
            pkg = importlib.import_module(package)
            if not hasattr(pkg, "__path__"):  # a module: importing it registered what it defines
                modules.append(package)
                continue
            names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
            modules += [f"{package}.{n}" for n in [n for n in self._first if n in names] + sorted(set(names) - set(self._first))]
        self._rank = {m: i for i, m in enumerate(modules)}
        for m in modules:
            importlib.import_module(m)
        if self.entry_points:
            self._find_plugins()

    def _find_plugins(self) -> None:
        """Import the modules installed distributions name in the group `entry_points`, sorted by
        (entry name, module), ranked after the built-in modules in that order."""
        eps = sorted(importlib.metadata.entry_points(group=self.entry_points), key=lambda e: (e.name, e.value))
        for ep in eps:
            module = ep.value.partition(":")[0].strip()
            dist = f"{ep.dist.name} {ep.dist.version}" if getattr(ep, "dist", None) else ep.value
            before = set(self._items)
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001 -- any failure of someone else's code: say it, go on
                for name in set(self._items) - before:  # no half-registered plugin
                    self._items.pop(name, None)
                    self._origin.pop(name, None)
                _warn_failed(self.entry_points, ep.name, ep.value, dist, e)
                continue
            self._rank.setdefault(module, len(self._rank))
            for name in set(self._items) - before:
                self._rank.setdefault(self._origin[name][0], len(self._rank))
            self._plugins[module] = dist

    def plugin_of(self, name: str) -> str | None:
        """"distribution version" of the plugin that registered `name`, or None for a built-in entry."""
        self._find()
        origin = self._origin.get(name)
        if origin is None:
            return None
        module = origin[0]
        for plugin, dist in self._plugins.items():
            if module == plugin or module.startswith(plugin + "."):
                return dist
        return None

    def _names(self) -> list[str]:
        last = len(self._rank)
        return sorted(self._items, key=lambda n: (self._rank.get(self._origin[n][0], last), self._origin[n][1]))

    def add(self, name: str, value: T) -> T:
        # the built-in entries first, so that a name taken by one of them is refused here, not later
        # when its module registers (a no-op while the registry's own modules are being imported)
        self._find()
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.kind} registry: a name must be a non-empty string, got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} registry: {name!r} is already registered ({self._items[name]!r}); "
                             f"choose another name")
        self._items[name] = value
        self._origin[name] = (_registering_module(), next(self._seq))
        return value

    def register(self, name: str) -> Callable[[T], T]:
        def deco(value: T) -> T:
            self.add(name, value)
            return value
        return deco

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not registered (errors.unknown_message)."""
        self._find()
        return unknown_message(self.kind, str(name), self._items)

    def __getitem__(self, name: str) -> T:
        self._find()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        self._find()
        try:
            return name in self._items
        except TypeError:  # an unhashable name is simply not registered
            return False

    def __iter__(self) -> Iterator[str]:
        self._find()
        return iter(self._names())

    def __len__(self) -> int:
        self._find()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"

    @contextmanager
    def overriding(self, name: str, value: T) -> Iterator[T]:
        """Within the block, `name` maps to `value` (added or shadowing the registered one); for tests
        and experiments. The previous state is restored on exit."""
        self._find()
        had, old, origin = name in self._items, self._items.get(name), self._origin.get(name)
        self._items[name] = value
        self._origin.setdefault(name, (_registering_module(), next(self._seq)))
        try:
            yield value
        finally:
            if had:
                self._items[name] = old  # type: ignore[assignment]
                self._origin[name] = origin  # type: ignore[assignment]
            else:
                self._items.pop(name, None)
                self._origin.pop(name, None)


_warned: set[tuple[str, str]] = set()


def _warn_failed(group: str, name: str, value: str, dist: str, error: Exception) -> None:
    """One line per broken plugin and process, however many registries read its group."""
    if (group, value) in _warned:
        return
    _warned.add((group, value))
    why = " ".join(f"{type(error).__name__}: {error}".split())
    why = why if len(why) <= 200 else why[:197] + "..."
    warnings.warn(f"plugin {name!r} ({value}, from {dist}) in entry-point group {group!r} failed to load and is "
                  f"left out ({why})", ReinitlabWarning, stacklevel=1)


def _registering_module() -> str:
    """The module whose body is running the registration (a decorator or an `add` at its top level),
    or the nearest caller's module when none is being imported."""
    frame = sys._getframe(1)
    nearest = None
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != __name__:
            nearest = nearest or name
            if frame.f_code.co_name == "<module>":
                return name
        frame = frame.f_back
    return nearest or ""
