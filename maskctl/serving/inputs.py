"""Where ``maskctl predict``'s inputs come from: a data file, stdin or texts given one by one.

Why a module of its own: the choice between reading a file as a table (csv, tsv, json,
parquet: through ``datasets``, under the task card's own column names) and streaming it line
by line (JSON lines, plain text, stdin: never all held in memory) is made once, here, and
everything a user can get wrong about the inputs is refused *before* the base model loads
(seconds to minutes), not after. ``stream.predict_inputs`` runs what this module reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.choices import DATA_FILE_FORMATS
from maskctl.errors import MaskctlError
from maskctl.io import refuse_existing
from maskctl.tasks.readers.datafiles import DataFile, load_file

STDIN = "-"
# Read as rows through datasets; JSON lines and plain text are streamed line by line instead.
TABLE_FORMATS = tuple(ext for ext in DATA_FILE_FORMATS if ext != ".jsonl")


@dataclass(frozen=True)
class PredictionInputs:
    """What to predict: exactly one of a file (``source``, ``-`` for stdin) and ``texts``.

    A table file is read whole into ``table`` (its rows under their own column names); any
    other source is streamed by ``lines``.
    """

    source: str | None = None
    texts: list[tuple[str, str | None]] = field(default_factory=list)  # (text, text_pair)
    table: DataFile | None = None

    @classmethod
    def read(
        cls,
        source: str | None = None,
        texts: Sequence[str] | None = None,
        pairs: Sequence[str] | None = None,
        text_columns: Sequence[str] | None = None,
        output: Path | None = None,
        overwrite: bool = False,
    ) -> PredictionInputs:
        """Check everything the command line can get wrong and read a table file, before any
        model loads: one source, one pair per text, an ``output`` that may be written
        (``overwrite``), an existing file, and ``text_columns`` (one, or two for a sentence
        pair) naming columns of a table file, read as ``text`` / ``text_pair``."""
        texts, pairs = list(texts or []), list(pairs or [])
        if (source is None) == (not texts):
            raise MaskctlError("give either --input FILE (or - for stdin) or --text", "e.g. --text 'Shares fell'")
        if pairs and len(pairs) != len(texts):
            raise MaskctlError(
                f"{len(pairs)} --text-pair for {len(texts)} --text", "give one --text-pair after each --text"
            )
        if output:
            refuse_existing(output, overwrite)
        if source not in (None, STDIN) and not Path(source).is_file():
            raise MaskctlError(f"input file {source} does not exist", "check the path, or pass - for stdin")
        is_table = source not in (None, STDIN) and Path(source).suffix.lower() in TABLE_FORMATS
        table = load_file(source) if is_table else None
        if source not in (None, STDIN) and not is_table and not _has_a_line(Path(source)):
            raise no_input(source)
        if text_columns:
            table = renamed_columns(table, list(text_columns))
        return cls(source=source, texts=list(zip(texts, pairs or [None] * len(texts))), table=table)

    @property
    def columns(self) -> list[str] | None:
        """The table file's columns (named in errors when no row was usable); None otherwise."""
        return self.table.columns if self.table is not None else None

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The table file's rows with the line each is on (for error messages)."""
        if self.table is None:
            raise ValueError("rows() reads a table file; use lines() for other inputs")
        return ((self.table.line(i), row) for i, row in enumerate(self.table.rows))

    @contextlib.contextmanager
    def lines(self) -> Iterator[Iterable[str]]:
        """The input as text lines: stdin, the file (streamed, closed on leaving), or one JSON
        object per ``--text`` (with its ``text_pair``)."""
        if self.table is not None:
            raise ValueError("lines() streams a line file, stdin or texts; use rows() for a table file")
        if self.source == STDIN:
            yield sys.stdin
        elif self.source is not None:
            with open(self.source, encoding="utf-8-sig") as handle:
                yield handle
        else:
            yield [json.dumps({"text": t, **({"text_pair": p} if p is not None else {})}) for t, p in self.texts]


def no_input(source: str) -> MaskctlError:
    """Input with no line to predict: a mistake (a wrong file, an empty pipe), never an empty result."""
    where = "stdin" if source == STDIN else f"input file {source}"
    return MaskctlError(
        f"{where} holds no input line", 'give one text or JSON object per line, e.g. {"text": "Shares fell"}'
    )


def _has_a_line(path: Path) -> bool:
    """Whether a line file holds a line that is not blank (read up to the first such line)."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return any(line.strip() for line in handle)


def renamed_columns(table: DataFile | None, text_columns: list[str]) -> DataFile:
    """``table``'s rows with ``text_columns`` (one or two names) read as ``text`` / ``text_pair``;
    refused for line input (JSON lines and plain text carry their own field names)."""
    if table is None:
        raise MaskctlError(
            "--text-column names a column of a csv, tsv, json or parquet --input",
            "JSON lines and plain text carry their own field names",
        )
    if len(text_columns) > 2:
        raise MaskctlError(f"{len(text_columns)} --text-column given", "give one, or two for a sentence pair")
    missing = [c for c in text_columns if c not in table.columns]
    if missing:
        raise MaskctlError(
            f"{table.path.name} has no column {missing[0]!r}; its columns: {', '.join(table.columns)}",
            "name one of them with --text-column",
        )
    roles = dict(zip(("text", "text_pair"), text_columns))
    rows = [
        {**{k: v for k, v in row.items() if k not in roles}, **{r: row[c] for r, c in roles.items()}}
        for row in table.rows
    ]
    return dataclasses.replace(table, rows=rows)
