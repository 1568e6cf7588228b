"""Users' own data files, read through ``datasets``' own loaders: csv, tsv, json, jsonl, parquet.

The hand-written ``delimited`` reader stays for the official corpora whose cards need its
options (no header row, unquoted TSVs); this one reads whatever a user brings, as the Hugging
Face examples' ``--train_file`` does. CSV and TSV cells are read as strings (no "NA" turned
into a missing value, no "007" into 7) and a byte-order mark is dropped (spreadsheet programs
write one); JSON may be one object per line or one array. Card spec (``reader: file``, or
``json`` / ``parquet`` to force a format): ``files: {train: ..., dev: ..., test: ...}``,
optional ``dev_from_train``, ``label_map``. Errors name the file and the row's line (one line
per row; a quoted CSV field spanning lines shifts the count).
"""

from __future__ import annotations

import contextlib
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskctl.choices import DATA_FILE_FORMATS
from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.rows import example_from_row, resolve_file
from maskctl.tasks.readers.split import carve_dev

FORMATS = DATA_FILE_FORMATS


@dataclass(frozen=True)
class DataFile:
    """One file's rows (column -> value) and how to point at a row in error messages."""

    path: Path
    format: str
    columns: list[str]
    rows: list[dict[str, Any]]

    def line(self, index: int) -> int:
        """The line of row ``index`` (the header is line 1 of a CSV); a parquet row's number."""
        return index + (2 if self.format in ("csv", "tsv") else 1)

    def where(self, index: int) -> str:
        return f"{self.path} row {index + 1}" if self.format == "parquet" else f"{self.path}:{self.line(index)}"


def file_format(path: Path, forced: str | None = None) -> str:
    if forced in ("json", "parquet", "csv", "tsv"):
        return forced
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TaskError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'}",
            f"use one of {', '.join(FORMATS)}",
        )
    return fmt


_CACHE: dict[tuple[str, int, int, str], DataFile] = {}  # a run's train/dev/test files, read once each
_CACHED_FILES = 4


def load_file(path: str | Path, forced: str | None = None) -> DataFile:
    """Every row of one data file (read once per process while the file is unchanged)."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"data file {path} does not exist", "check the path")
    fmt = file_format(path, forced)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, fmt)
    if key not in _CACHE:
        if stat.st_size == 0:
            raise TaskError(f"{path}: the file is empty", "give a file with a header row and at least one row")
        data = _load(path, fmt)
        rows = data.to_list()
        if not rows:
            raise TaskError(f"{path}: the file has no rows", "give a file with at least one row")
        while len(_CACHE) >= _CACHED_FILES:  # a long-lived process keeps only the latest files
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = DataFile(path, fmt, list(data.column_names), rows)
    return _CACHE[key]


def _load(path: Path, fmt: str):
    import datasets

    kwargs: dict[str, Any] = {}
    builder = fmt
    if fmt in ("csv", "tsv"):
        builder = "csv"
        header = _header(path, "\t" if fmt == "tsv" else ",")
        kwargs = dict(
            sep="\t" if fmt == "tsv" else ",",
            encoding="utf-8-sig",
            keep_default_na=False,
            na_filter=False,
            features=datasets.Features({c: datasets.Value("string") for c in header}),
        )
    try:
        with _quiet_datasets():
            return datasets.load_dataset(builder, data_files={"train": str(path)}, split="train", **kwargs)
    except Exception as exc:  # DatasetGenerationError, ArrowInvalid, pandas' ParserError, ...
        cause = exc.__cause__ or exc
        reason = " ".join(str(cause).split())[:160] or type(cause).__name__
        if "corresponds to no data" in str(exc):
            raise TaskError(f"{path}: the file has no rows", "give a file with at least one row") from exc
        hint = {
            "json": "write one JSON object per line (or one JSON array of objects)",
            "parquet": "write it with pandas.DataFrame.to_parquet or datasets.Dataset.to_parquet",
        }
        raise TaskError(
            f"{path}: not a readable {fmt} file ({reason})",
            hint.get(fmt, "quote fields that contain the delimiter; one row per line"),
        ) from exc


def _header(path: Path, delimiter: str) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle, delimiter=delimiter), None)
    if not header or not any(h.strip() for h in header):
        raise TaskError(f"{path}: the file is empty", "give a file with a header row and at least one row")
    if len(set(header)) != len(header):
        raise TaskError(f"{path}: the header names a column twice ({header})", "give every column its own name")
    return header


@contextlib.contextmanager
def _quiet_datasets():
    """No "Generating train split" bars for a local file: the run reports its own progress."""
    import datasets

    was = datasets.utils.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    """A split of ``card`` from its own data file (``reader: file``, ``json`` or ``parquet``)."""
    forced = spec["reader"] if spec["reader"] != "file" else None

    def one(name: str) -> list[dict[str, Any]]:
        data = load_file(resolve_file(card, spec, name, data_dir), forced)
        return [example_from_row(card, spec, row, data.where(i)) for i, row in enumerate(data.rows)]

    return carve_dev(one, spec, split, card)
