"""Task kinds: the code behind a card's ``kind`` (model head, encoding, predictions)."""

from __future__ import annotations

from maskctl.errors import TaskError
from maskctl.tasks.kinds.base import Features, Kind
from maskctl.tasks.kinds.multiple_choice import MultipleChoice
from maskctl.tasks.kinds.sequence_classification import SequenceClassification
from maskctl.tasks.kinds.token_tagging import TokenTagging

KIND_CLASSES: dict[str, type] = {
    SequenceClassification.name: SequenceClassification,
    TokenTagging.name: TokenTagging,
    MultipleChoice.name: MultipleChoice,
}

__all__ = ["Features", "Kind", "get_kind", "KIND_CLASSES"]


def get_kind(name: str) -> Kind:
    try:
        return KIND_CLASSES[name]()
    except KeyError:
        raise TaskError(f"unknown task kind {name!r}", f"use one of {', '.join(KIND_CLASSES)}") from None
