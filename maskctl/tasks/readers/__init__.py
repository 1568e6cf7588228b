"""Readers turn a card's data spec into examples in the kind's canonical form.

Canonical examples (what every task kind consumes):

* sequence classification: ``{"text": str, "text_pair": str | None, "label": str}``
* token tagging: ``{"tokens": [str, ...], "tags": [str, ...]}``
* multiple choice: ``{"context": str, "endings": [str, ...], "label": str}``

A card's ``source`` is read by default; its ``files`` (the official on-disk format) when the
user passes ``--data-dir`` or when there is no ``source``. Each reader is one function
``read(card, spec, split, data_dir)``; add a format by adding one to ``READERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import SPLITS, TaskCard, canonical_split
from maskctl.tasks.readers import conll, datafiles, delimited, hub, packaged, trec

Reader = Callable[[TaskCard, dict, str, "Path | None"], list[dict[str, Any]]]

READERS: dict[str, Reader] = {
    "csv": delimited.read,
    "tsv": delimited.read,
    "jsonl": delimited.read,
    "file": datafiles.read,  # csv, tsv, json(l) or parquet by extension, through datasets (own data)
    "json": datafiles.read,
    "parquet": datafiles.read,
    "conll": conll.read,
    "trec": trec.read,
    "packaged": packaged.read,
    "hub": hub.read,
}


def data_spec(card: TaskCard, data_dir: str | Path | None) -> dict[str, Any]:
    """The spec a split is read from: ``files`` with ``--data-dir`` (or alone), else ``source``."""
    if card.files and (data_dir or not card.source):
        return card.files
    return card.source


def read_split(card: TaskCard, split: str, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Load one split (``train``, ``dev`` or ``test``) of ``card`` and validate it."""
    split = canonical_split(split)
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)} (validation means dev)")
    spec = data_spec(card, data_dir)
    reader = READERS.get(spec["reader"])
    if reader is None:
        raise TaskError(f"task {card.name!r}: unknown reader {spec['reader']!r}", f"use one of {', '.join(READERS)}")
    examples = reader(card, spec, split, Path(data_dir) if data_dir else None)
    if not examples:
        raise TaskError(f"task {card.name!r}: the {split} split is empty", "check the data files")
    return examples
