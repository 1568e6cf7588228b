"""One registry mechanism for everything maskctl looks up by name (task kinds, readers, metrics,
training methods, model families), as lm-evaluation-harness does it.

A ``Registry`` maps names to objects given three ways: a decorator on the object
(``@METRICS.register("mcc")``), a lazy placeholder ``"module:attribute"`` imported on first use
(so ``maskctl --help`` and a serving process never import what only training needs), or an entry
point of the registry's group in any installed package (``[project.entry-points."maskctl.kinds"]``),
also loaded on first use. Listing names imports nothing: the installed distributions are scanned
once per process for every group together (each scan reads every package's metadata).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import weakref
from collections.abc import Iterator
from importlib.metadata import EntryPoints, entry_points
from typing import Any, Generic, TypeVar

from maskctl.errors import MaskctlError

T = TypeVar("T")

_REGISTRIES: weakref.WeakSet[Registry] = weakref.WeakSet()


@functools.cache
def _installed_entry_points() -> EntryPoints:
    return entry_points()


def rescan() -> None:
    """See the plugins installed now (a notebook's ``pip install``, a test's distribution on
    ``sys.path``): every registry forgets what entry points gave it and reads the metadata again
    at its next lookup. What code registered stays."""
    _installed_entry_points.cache_clear()
    for registry in _REGISTRIES:
        for name in registry._plugins:
            registry._objects.pop(name, None)
            registry._lazy.pop(name, None)
        registry._plugins.clear()
        registry._discovered = False


_LISTED_WIDTH = 40  # names longer than this, joined, are left to the registry's listing command


class Registry(Generic[T]):
    """Names to objects of one kind; see the module docstring."""

    def __init__(
        self, what: str, group: str | None = None, error: type[MaskctlError] = MaskctlError, listing: str | None = None
    ) -> None:
        self.what = what  # e.g. "task kind", for messages
        self.group = group  # entry-point group of plugins, if any
        self.error = error
        self.listing = listing  # the command that lists the names, e.g. "maskctl tasks"
        self._objects: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attribute"
        self._plugins: set[str] = set()  # the names entry points gave
        self._order: dict[str, None] = {}  # every name in registration order (resolving keeps it)
        self._discovered = False
        _REGISTRIES.add(self)

    def register(self, name: str, target: T | str | None = None) -> Any:
        """``register(name, obj)``, ``register(name, "module:attr")``, or as a decorator."""
        self._order.setdefault(name)
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
        for point in _installed_entry_points().select(group=self.group):
            if point.name not in self._objects and point.name not in self._lazy:
                self._lazy[point.name] = point.value
                self._plugins.add(point.name)
                self._order.setdefault(point.name)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order, plugins last (nothing is imported)."""
        self._discover()
        return tuple(name for name in self._order if name in self._objects or name in self._lazy)

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
            raise self.error(f"unknown {self.what} {name!r}", self._choices(close[0] if close else None))
        target = self._lazy[name]
        module, _, attribute = target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in filter(None, attribute.split(".")):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise self.error(
                f"the {self.what} {name!r} ({target}) failed to load ({exc})", "reinstall the package that provides it"
            ) from exc
        self._objects[name] = obj
        del self._lazy[name]
        return obj

    def _choices(self, close: str | None) -> str:
        """The fix of an unknown name: the closest name, then every name, or where those would
        not fit an 80-column error line, the command that lists them."""
        hint = f"did you mean {close}? " if close else ""
        names = ", ".join(self.names())
        if self.listing and len(names) > _LISTED_WIDTH:
            return f"{hint}`{self.listing}` lists the {len(self.names())} registered"
        return f"{hint}use one of {names}"

    def items(self) -> list[tuple[str, T]]:
        """Every (name, object), each imported."""
        return [(name, self.get(name)) for name in self.names()]

    def values(self) -> list[T]:
        """Every object, each imported."""
        return [self.get(name) for name in self.names()]
