"""The one kind of shim maskctl keeps: a public name that moved answers at its old path for one
more minor version, with a ``DeprecationWarning`` that names its new home and the version that
removes the old path, so a user's code is told what to change instead of breaking."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

REMOVED_IN = "0.3.0"


def moved_names(old_module: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``old_module`` for names that moved: ``homes`` maps each
    to its new module."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        warnings.warn(
            f"{old_module}.{name} moved to {homes[name]}.{name}; the old path is removed in maskctl {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(homes[name]), name)

    return __getattr__
