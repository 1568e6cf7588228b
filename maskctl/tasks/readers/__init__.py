"""Readers turn a card's data spec into examples in the kind's canonical form.

Canonical examples (what every task kind consumes):

* sequence classification: ``{"text": str, "text_pair": str | None, "label": str}``
* token tagging: ``{"tokens": [str, ...], "tags": [str, ...]}``
* multiple choice: ``{"context": str, "endings": [str, ...], "label": str}``

A card's ``source`` is read by default; its ``files`` (the official on-disk format) when the
user passes ``--data-dir`` or when there is no ``source``. Each reader is one function
``read(card, spec, split, data_dir)`` registered in ``READERS`` (``maskctl.registry``): the
built-in ones as lazy placeholders (reading data pulls in datasets and scikit-learn, which a
serving process never needs), a plugin's through the entry-point group ``maskctl.readers``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.registry import Registry
from maskctl.tasks.card import SPLITS, TaskCard, canonical_split

Reader = Callable[[TaskCard, dict, str, "Path | None"], list[dict[str, Any]]]

READERS: Registry[Reader] = Registry("reader", group="maskctl.readers", error=TaskError)
for _name, _target in (
    ("csv", "delimited"),
    ("tsv", "delimited"),
    ("jsonl", "delimited"),
    # csv, tsv, json(l) or parquet by extension, through datasets (own data)
    ("file", "datafiles"),
    ("json", "datafiles"),
    ("parquet", "datafiles"),
    ("conll", "conll"),
    ("trec", "trec"),
    ("packaged", "packaged"),
    ("hub", "hub"),
):
    READERS.register(_name, f"maskctl.tasks.readers.{_target}:read")


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
    try:
        reader = READERS.get(spec["reader"])
    except TaskError as exc:
        raise TaskError(f"task {card.name!r}: {exc.message}", exc.fix) from None
    examples = reader(card, spec, split, Path(data_dir) if data_dir else None)
    if not examples:
        raise TaskError(f"task {card.name!r}: the {split} split is empty", "check the data files")
    return examples
