"""Local CSV, TSV and JSON-lines files, one file per split, for user task cards.

Source keys: ``files: {train: ..., dev: ..., test: ...}`` (paths relative to ``--data-dir``,
else to the card's folder), optional ``delimiter`` for csv/tsv. A header row names the columns.
Errors name the file and line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard


def resolve_file(card: TaskCard, split: str, data_dir: Path | None) -> Path:
    files = card.source.get("files", {})
    if split not in files:
        raise TaskError(f"task {card.name!r} has no {split} file", f"add `files: {{{split}: ...}}` to its source")
    path = Path(files[split]).expanduser()
    if not path.is_absolute():
        path = (data_dir or Path(card.base_dir or ".")) / path
    if not path.is_file():
        raise TaskError(f"{path}: the {split} file of task {card.name!r} does not exist",
                        "check --data-dir or the paths under `files:` in the card")
    return path


def read(card: TaskCard, split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    path = resolve_file(card, split, data_dir)
    reader = card.source["reader"]
    rows = _jsonl_rows(path) if reader == "jsonl" else _delimited_rows(path, card, reader)
    needed = [*card.text_fields, card.label_field]
    examples = []
    for line, row in rows:
        missing = [f for f in needed if f not in row or row[f] is None]
        if missing:
            raise TaskError(f"{path}:{line}: no field {missing[0]!r} (has {sorted(row)})",
                            "fix text_fields/label_field in the card or the file's columns")
        label = str(row[card.label_field])
        if label not in card.labels:
            raise TaskError(f"{path}:{line}: label {label!r} is not one of {card.labels}",
                            "fix the label or add it to the card's `labels:`")
        examples.append({**{f: str(row[f]) for f in card.text_fields}, card.label_field: label})
    return examples


def _delimited_rows(path: Path, card: TaskCard, reader: str):
    delimiter = card.source.get("delimiter", "\t" if reader == "tsv" else ",")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter=delimiter)
        for row in rows:
            if None in row:
                raise TaskError(f"{path}:{rows.line_num}: more columns than the header names",
                                "quote fields that contain the delimiter")
            yield rows.line_num, row


def _jsonl_rows(path: Path):
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{line}: not valid JSON ({exc.msg})",
                                "write one JSON object per line") from exc
            if not isinstance(row, dict):
                raise TaskError(f"{path}:{line}: expected a JSON object", "write one JSON object per line")
            yield line, row
