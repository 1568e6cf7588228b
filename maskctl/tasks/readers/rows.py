"""Data files to canonical examples: where a split's file is, and one raw row (column -> value)
to an example through its kind (``Kind.example_from_row``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds import get_kind
from maskctl.tasks.kinds.base import RowView


def resolve_file(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> Path:
    """The file of ``split`` under ``spec['files']``, relative to ``--data-dir`` or the card."""
    files = spec.get("files", {})
    if split not in files:
        raise TaskError(
            f"task {card.name!r} has no {split} file",
            f"add `files: {{{split}: ...}}` to its card" + _hidden_hint(spec, split),
        )
    path = Path(str(files[split])).expanduser()
    if not path.is_absolute():
        path = (data_dir or Path(card.base_dir or ".")) / path
    if not path.is_file():
        raise TaskError(
            f"{path}: the {split} file of task {card.name!r} does not exist",
            "check --data-dir or the file names under `files:` in the card",
        )
    return path


def _hidden_hint(spec: dict[str, Any], split: str) -> str:
    return f" ({spec['note']})" if spec.get("note") else ""


def label_name(card: TaskCard, spec: dict[str, Any], value: Any, where: str) -> str:
    """Map a raw label through the spec's ``label_map`` and check it is one of the card's."""
    return RowView(card, spec, {}, where).label(value)


def example_from_row(card: TaskCard, spec: dict[str, Any], row: dict[str, Any], where: str) -> dict[str, Any]:
    """A canonical example of ``card.kind`` from a raw row, built by the kind; errors name
    ``where`` (file:line). ``spec`` may rename columns (``fields:``), ``join`` text columns into
    one, map labels (``label_map``) and, for multiple choice, prefix every ending with a column
    (``ending_prefix``)."""
    return get_kind(card.kind).example_from_row(RowView(card, spec, row, where))
