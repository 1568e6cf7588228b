"""Task kinds: the code behind a card's ``kind`` (model head, encoding, predictions)."""

from __future__ import annotations

from maskctl.errors import TaskError
from maskctl.tasks.kinds.base import Kind
from maskctl.tasks.kinds.sequence_classification import SequenceClassification

KIND_CLASSES: dict[str, type[Kind]] = {
    SequenceClassification.name: SequenceClassification,
}


def get_kind(name: str) -> Kind:
    try:
        return KIND_CLASSES[name]()
    except KeyError:
        raise TaskError(f"unknown task kind {name!r}", f"use one of {', '.join(KIND_CLASSES)}") from None
