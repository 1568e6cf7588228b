"""Find the files maskctl ships as data: built-in task cards and recipes.

In a wheel they sit under ``maskctl/_builtin/`` (hatchling force-include); in a source
checkout or an editable install they are the top-level ``tasks/`` and ``recipes/`` folders.
Keeping them out of the import namespace avoids a clash with any top-level ``tasks`` package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def builtin_dir(kind: str) -> Path:
    """Return the folder that holds the shipped ``kind`` files ("tasks" or "recipes")."""
    if kind not in ("tasks", "recipes"):
        raise ValueError(f"unknown resource kind {kind!r}")
    installed = _PACKAGE_DIR / "_builtin" / kind
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / kind
