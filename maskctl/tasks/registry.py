"""Find tasks: a YAML path, or a name registered in the entry-point group ``maskctl.tasks``.

Listing names reads package metadata only; a plugin's code is imported only when its task is
asked for (lazy loading, as lm-evaluation-harness and simonw/llm do). maskctl's own tasks are
registered in its ``pyproject.toml`` under the same group, exactly like a third-party one.
An entry point refers to a callable that returns a ``TaskCard`` (or to a ``TaskCard``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard, load_card

GROUP = "maskctl.tasks"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def task_names() -> list[str]:
    """Names of every registered task, without importing any plugin."""
    return sorted(_entry_points())


def get_card(name_or_path: str) -> TaskCard:
    """Resolve ``--task``: a ``.yaml``/``.yml`` path or a registered task name."""
    if name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        return load_card(name_or_path)
    return _card(name_or_path, _entry_points())


def registered_cards() -> Iterator[tuple[str, TaskCard | TaskError]]:
    """Every registered task's card, or the ``TaskError`` that loading it raised, by name.

    The installed distributions are scanned once for all of them: each scan costs tens of
    milliseconds in a full environment, and ``maskctl tasks`` lists every card."""
    eps = _entry_points()
    for name in sorted(eps):
        try:
            yield name, _card(name, eps)
        except TaskError as exc:
            yield name, exc


def _card(name: str, eps: dict[str, EntryPoint]) -> TaskCard:
    if name not in eps:
        close = difflib.get_close_matches(name, eps, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run `maskctl tasks` to list them"
        raise TaskError(f"unknown task {name!r}", hint)
    try:
        target = eps[name].load()
        card = target() if callable(target) else target
    except TaskError:
        raise
    except Exception as exc:
        raise TaskError(
            f"the plugin for task {name!r} failed to load ({exc})",
            f"check the package that provides entry point {eps[name].value}",
        ) from exc
    if not isinstance(card, TaskCard):
        raise TaskError(
            f"entry point {name!r} gave {type(card).__name__}, not a TaskCard",
            "a maskctl.tasks entry point must return maskctl.tasks.card.TaskCard",
        )
    return card
