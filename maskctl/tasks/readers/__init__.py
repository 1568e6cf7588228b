"""Readers turn a card's ``source`` into examples: a list of dicts of text fields and a label.

Every reader returns examples with the card's ``text_fields`` and ``label_field``; labels are
checked against the card so that a wrong label is reported with its file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import SPLITS, TaskCard
from maskctl.tasks.readers import hub, local_files, packaged

Reader = Callable[[TaskCard, str, "Path | None"], list[dict[str, Any]]]

READERS: dict[str, Reader] = {
    "packaged": packaged.read,
    "csv": local_files.read,
    "tsv": local_files.read,
    "jsonl": local_files.read,
    "hub": hub.read,
}


def read_split(card: TaskCard, split: str, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Load one split (``train``, ``dev`` or ``test``) of ``card`` and validate it."""
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    reader = READERS.get(card.source["reader"])
    if reader is None:
        raise TaskError(f"task {card.name!r}: unknown reader {card.source['reader']!r}",
                        f"use one of {', '.join(READERS)}")
    examples = reader(card, split, Path(data_dir) if data_dir else None)
    if not examples:
        raise TaskError(f"task {card.name!r}: the {split} split is empty", "check the data files")
    return examples
