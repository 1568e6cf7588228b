"""Entry-point targets for the task cards that ship with maskctl (``tasks/*.yaml``).

``pyproject.toml`` registers each shipped card under ``maskctl.tasks`` (the same group a
third-party plugin uses) as ``maskctl.tasks.builtin:<name>``, with ``_`` for ``-``. The targets
are not listed here a second time: any such attribute is the card file of that name, so the
list of built-in tasks is the entry points, checked against the YAML files by
tests/tasks/test_registry.py. Calling a target reads the card, nothing heavier.
"""

from __future__ import annotations

from maskctl.resources import builtin_dir
from maskctl.tasks.card import TaskCard, load_card


class BuiltinCard:
    """A callable that loads one shipped YAML card by file name."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def __call__(self) -> TaskCard:
        return load_card(builtin_dir("tasks") / self.filename)


def __getattr__(name: str) -> BuiltinCard:
    filename = name.replace("_", "-") + ".yaml"
    if name.startswith("__") or not (builtin_dir("tasks") / filename).is_file():
        raise AttributeError(f"module {__name__!r} has no attribute {name!r} (no shipped card {filename})")
    return BuiltinCard(filename)
