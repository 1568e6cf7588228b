"""What serving returns besides each kind's prediction (declared in the kind's module): a
``RequestError`` in the place of a request that does not fit (the other requests of the batch
are still answered), and how a user's input becomes a canonical example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskctl.deprecation import moved_names
from maskctl.tasks.task import Task

__all__ = ["RequestError", "example_from_input"]
__getattr__ = moved_names(
    __name__,
    {
        "Choice": "maskctl.tasks.kinds.multiple_choice",
        "Classification": "maskctl.tasks.kinds.sequence_classification",
        "Tagging": "maskctl.tasks.kinds.token_tagging",
    },
)


@dataclass
class RequestError:
    """One request of a batch that could not be answered: its index, what is wrong, the fix."""

    index: int
    task: str | None
    message: str
    fix: str
    status: int = 400  # the HTTP status it answers with: 400 a bad input, 404 no such task, 500 a bug
    # "input": it does not fit its task's kind (a server refuses the whole request); "encoding":
    # it fit, but the kind's tokenizer refused it (it fails alone, the rest is answered)
    stage: str = "input"

    def __str__(self) -> str:
        return f"request {self.index}: {self.message} — {self.fix}"


def example_from_input(task: Task, item: Any) -> dict[str, Any]:
    """A canonical example (with a placeholder gold label) from one user input, built by the
    task's kind (``Kind.example_from_input``); ``ValueError`` when it does not fit the kind
    or its text is empty.
    An object may use the task's own column names (a row of its data files: ``{"review": ...}``)."""
    if isinstance(item, dict):
        item = task.kind.input_from_row(task.card.fields, item)
    example = task.kind.example_from_input(task.labels, item)
    _check_unicode(example)
    if isinstance(example.get("text"), str) and not example["text"].strip():
        raise ValueError("has an empty text")  # nothing to classify: TEI refuses it too
    return example


def _check_unicode(value: Any) -> None:
    """Text a tokenizer can take: JSON may carry a lone surrogate (``"\\ud800"``) that Python
    accepts as a ``str`` but no UTF-8 tokenizer encodes; found here, it fails its own request."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"has text that is not valid Unicode (a lone surrogate {value[exc.start]!r} at character {exc.start})"
            ) from None
    elif isinstance(value, dict):
        for v in value.values():
            _check_unicode(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_unicode(v)
