"""One registry mechanism for everything maskctl looks up by name (task kinds, readers, metrics,
training methods, model families), as lm-evaluation-harness does it.

A ``Registry`` maps names to objects given three ways: a decorator on the object
(``@READERS.register("csv")``), a lazy placeholder ``"module:attribute"`` imported on first use
(so a serving process never imports what only training or reading data needs), or an entry
point of the registry's group in any installed package (``[project.entry-points."maskctl.kinds"]``),
also loaded on first use. Listing names imports nothing.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from maskctl.errors import MaskctlError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to objects of one kind; see the module docstring."""

    def __init__(self, what: str, group: str | None = None, error: type[MaskctlError] = MaskctlError) -> None:
        self.what = what  # e.g. "task kind", for messages
        self.group = group  # entry-point group of plugins, if any
        self.error = error
        self._objects: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attribute"
        self._discovered = False

    def register(self, name: str, target: T | str | None = None) -> Any:
        """``register(name, obj)``, ``register(name, "module:attr")``, or as a decorator."""
        if target is None:
            def decorate(obj: T) -> T:
                self._objects[name] = obj
                self._lazy.pop(name, None)
                return obj
            return decorate
        if isinstance(target, str):
            if name not in self._objects:
                self._lazy[name] = target
        else:
            self._objects[name] = target
            self._lazy.pop(name, None)
        return target

    def _discover(self) -> None:
        if self._discovered or self.group is None:
            return
        self._discovered = True
        for point in entry_points(group=self.group):
            if point.name not in self._objects and point.name not in self._lazy:
                self._lazy[point.name] = point.value

    def names(self) -> list[str]:
        """Every registered name, in registration order (nothing is imported)."""
        self._discover()
        return list(dict.fromkeys([*self._objects, *self._lazy]))

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The object registered as ``name``, imported on first use; a ``MaskctlError`` (of the
        registry's class) naming the choices, and the closest, for an unknown name."""
        if name in self._objects:
            return self._objects[name]
        self._discover()
        if name not in self._lazy:
            close = difflib.get_close_matches(str(name), self.names(), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise self.error(f"unknown {self.what} {name!r}", f"{hint}use one of {', '.join(self.names())}")
        target = self._lazy[name]
        module, _, attribute = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attribute) if attribute else importlib.import_module(module)
        except (ImportError, AttributeError) as exc:
            raise self.error(f"the {self.what} {name!r} ({target}) failed to load ({exc})",
                             "reinstall the package that provides it") from exc
        self._objects[name] = obj
        del self._lazy[name]
        return obj

    def items(self) -> list[tuple[str, T]]:
        """Every (name, object), each imported."""
        return [(name, self.get(name)) for name in self.names()]
