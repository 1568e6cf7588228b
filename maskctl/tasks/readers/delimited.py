"""CSV, TSV and JSON-lines files, one file per split: user data and most official formats.

Spec keys: ``files: {train: ..., dev: ..., test: ...}``; for csv/tsv optionally ``header: false``
with ``columns: [...]`` (files without a header row, e.g. CoLA, AG News, SemEval),
``delimiter``, ``quoting: none`` (GLUE's TSVs are unquoted), ``label_map`` and ``dev_from_train``
(carve a dev split out of train when the corpus has none). Errors name the file and line.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.rows import example_from_row, resolve_file
from maskctl.tasks.readers.split import carve_dev


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    return carve_dev(lambda s: _read_file(card, spec, s, data_dir), spec, split, card)


def _read_file(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    path = resolve_file(card, spec, split, data_dir)
    rows = _jsonl_rows(path) if spec["reader"] == "jsonl" else _delimited_rows(path, spec)
    return [example_from_row(card, spec, row, f"{path}:{line}") for line, row in rows]


def _delimited_rows(path: Path, spec: dict[str, Any]):
    delimiter = spec.get("delimiter", "\t" if spec["reader"] == "tsv" else ",")
    quoting = csv.QUOTE_NONE if spec.get("quoting") == "none" else csv.QUOTE_MINIMAL
    columns = spec.get("columns")
    if spec.get("header", True) is False and not columns:
        raise TaskError(f"{path}: `header: false` needs `columns: [...]` in the card", "name the columns in order")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: drop a byte-order mark
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        header = columns if spec.get("header", True) is False else next(reader, None)
        if header is None:
            return
        if spec.get("header", True) is not False and columns:
            header = columns  # rename the header row's columns
        for values in reader:
            if not values or not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise TaskError(
                    f"{path}:{reader.line_num}: {len(values)} columns, the header names {len(header)}",
                    "quote fields that contain the delimiter, or fix `columns:`",
                )
            yield reader.line_num, dict(zip(header, values))


def _jsonl_rows(path: Path):
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}:{line}: not valid JSON ({exc.msg})", "write one JSON object per line") from exc
            if not isinstance(row, dict):
                raise TaskError(f"{path}:{line}: expected a JSON object", "write one JSON object per line")
            yield line, row
