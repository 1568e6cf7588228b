"""Find tasks: a YAML path, or a name in ``TASKS``, the registry of the entry-point group
``maskctl.tasks``.

Tasks are looked up like every other plugin (``maskctl.registry``): listing names reads package
metadata once per process and imports nothing; a plugin's code is imported only when its task is
asked for (lazy loading, as lm-evaluation-harness and simonw/llm do). maskctl's own tasks are
registered in its ``pyproject.toml`` under the same group, exactly like a third-party one.
An entry point refers to a callable that returns a ``TaskCard`` (or to a ``TaskCard``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from maskctl.errors import TaskError
from maskctl.registry import Registry
from maskctl.tasks.card import TaskCard, load_card

TASKS: Registry[TaskCard | Callable[[], TaskCard]] = Registry(
    "task", group="maskctl.tasks", error=TaskError, listing="maskctl tasks"
)


def task_names() -> list[str]:
    """Names of every registered task, without importing any plugin."""
    return sorted(TASKS.names())


def get_card(name_or_path: str) -> TaskCard:
    """Resolve ``--task``: a ``.yaml``/``.yml`` path or a registered task name."""
    if name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        return load_card(name_or_path)
    return _registered(name_or_path)


def registered_cards() -> Iterator[tuple[str, TaskCard | TaskError]]:
    """Every registered task's card, or the ``TaskError`` that loading it raised, by name (a file
    in the working folder that shares a task's name is not read)."""
    for name in task_names():
        try:
            yield name, _registered(name)
        except TaskError as exc:
            yield name, exc


def _registered(name: str) -> TaskCard:
    target = TASKS.get(name)
    try:  # a callable builds a fresh card for each caller (cards are not shared state)
        card = target() if callable(target) else target
    except TaskError:
        raise
    except Exception as exc:
        raise TaskError(
            f"the plugin for task {name!r} failed to build its card ({exc})",
            "check the package that provides it (`maskctl tasks` lists every task)",
        ) from exc
    if not isinstance(card, TaskCard):
        raise TaskError(
            f"the task {name!r} gave {type(card).__name__}, not a TaskCard",
            "a maskctl.tasks entry point must return maskctl.tasks.card.TaskCard",
        )
    return card
