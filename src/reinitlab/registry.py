"""One small registry type for methods, architectures, datasets and analyses.

    METHODS = Registry("method")
    @METHODS.register("lw")            # or METHODS.add("lw", LW)
    class LW(Method): ...
    METHODS["lww"] ->  UserError: unknown method 'lww' (did you mean 'lw'?); valid: baseline, ..., lw

A registry is a read-only mapping name -> value in registration order. Registering a name twice is
an error naming the registry and the name: a second method silently replacing the first would
change every study that names it.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Callable, Generic, TypeVar

from .errors import UserError, unknown_message

T = TypeVar("T")


class UnknownName(UserError, KeyError):
    """A UserError that is also a KeyError, so `Mapping.get`, `in` and callers catching KeyError
    keep working; printed as its message (a KeyError alone would print it quoted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # "method", "arch", ...: named in every error
        self._items: dict[str, T] = {}

    def add(self, name: str, value: T) -> T:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.kind} registry: a name must be a non-empty string, got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} registry: {name!r} is already registered ({self._items[name]!r}); "
                             f"choose another name")
        self._items[name] = value
        return value

    def register(self, name: str) -> Callable[[T], T]:
        def deco(value: T) -> T:
            self.add(name, value)
            return value
        return deco

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not registered (errors.unknown_message)."""
        return unknown_message(self.kind, str(name), self._items)

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._items
        except TypeError:  # an unhashable name is simply not registered
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"

    @contextmanager
    def overriding(self, name: str, value: T) -> Iterator[T]:
        """Within the block, `name` maps to `value` (added or shadowing the registered one); for tests
        and experiments. The previous state is restored on exit."""
        had, old = name in self._items, self._items.get(name)
        self._items[name] = value
        try:
            yield value
        finally:
            if had:
                self._items[name] = old  # type: ignore[assignment]
            else:
                self._items.pop(name, None)
