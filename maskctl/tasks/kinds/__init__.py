"""Task kinds: the code behind a card's ``kind`` (model head, encoding, predictions).

Importing this package registers the built-in kinds in ``KINDS``; a kind from another package
registers through the entry-point group ``maskctl.kinds`` and is imported when a card uses it.
"""

from __future__ import annotations

from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.kinds import multiple_choice, sequence_classification, token_tagging  # noqa: F401 - registers them
from maskctl.tasks.kinds.base import KINDS, Features, Kind, KindBase

# What a user's data file is when no kind recognises it (``Kind.recognises``): a text and a label.
FALLBACK_KIND = sequence_classification.SequenceClassification.name

__all__ = ["KINDS", "Features", "Kind", "KindBase", "get_kind", "infer_kind", "named_columns"]


def get_kind(name: str) -> Kind:
    return KINDS.get(name)()


def infer_kind(columns: list[str], rows: list[dict[str, Any]], label_column: str | None = None) -> str:
    """The kind of a user's data file (``columns``, its first ``rows``; ``label_column`` as
    ``--label-column`` names it): the first registered kind that recognises it, else
    ``FALLBACK_KIND``. Each kind says what its files look like, so a new kind needs no change here."""
    for name, cls in KINDS.items():
        if cls.recognises(columns, rows, label_column):
            return name
    return FALLBACK_KIND


def named_columns(
    kind: Kind, fields: dict[str, Any], text_columns: tuple[str, ...] = (), label_column: str | None = None
) -> dict[str, Any]:
    """``fields`` with a data file's own column names for the kind's input and label roles
    (``--text-column``, given twice for a sentence pair, and ``--label-column``): one rule for
    ``train --train-file`` and ``eval --file``."""
    if len(text_columns) > (2 if kind.input_role == "text" else 1):
        raise TaskError(
            f"{kind.name} takes one --text-column"
            if kind.input_role != "text"
            else "--text-column takes one column, or two for a sentence pair",
            "give --text-column once (twice for a pair)",
        )
    fields = dict(fields)
    if text_columns:
        fields[kind.input_role] = list(text_columns) if len(text_columns) > 1 else text_columns[0]
    if label_column:
        fields[kind.label_role] = label_column
    return fields
