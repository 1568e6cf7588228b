"""What serving returns: each kind's prediction (declared in the kind's module, re-exported
here) or a ``RequestError`` in the place of a request that does not fit (the other requests of
the batch are still answered), and how a user's input becomes a canonical example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskctl.tasks.kinds.base import input_from_row
from maskctl.tasks.kinds.multiple_choice import Choice
from maskctl.tasks.kinds.sequence_classification import Classification
from maskctl.tasks.kinds.token_tagging import Tagging
from maskctl.tasks.task import Task

__all__ = ["Choice", "Classification", "RequestError", "Tagging", "to_example"]


@dataclass
class RequestError:
    """One request of a batch that could not be answered: its index, what is wrong, the fix."""

    index: int
    task: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        return f"request {self.index}: {self.message} — {self.fix}"


def to_example(task: Task, item: Any) -> dict[str, Any]:
    """A canonical example (with a placeholder gold label) from one user input, built by the
    task's kind (``Kind.example_from_input``); ``ValueError`` when it does not fit the kind.
    An object may use the task's own column names (a row of its data files: ``{"review": ...}``)."""
    if isinstance(item, dict):
        item = input_from_row(task.card.fields, item)
    return task.kind.example_from_input(task.labels, item)
