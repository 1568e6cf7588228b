"""CoNLL-style column files: one token per line, a blank line between sentences.

Used for CoNLL-2003 (``eng.train``/``eng.testa``/``eng.testb``: word, POS, chunk, NER, with
``-DOCSTART-`` lines), Penn Treebank POS in ``word tag`` columns, and WNUT-2016 (tab-separated,
sentences separated by a line holding only whitespace). Spec keys: ``files``, ``token_column``
(default 0), ``tag_column`` (default -1), ``columns`` (expected count, to catch a wrong file),
``delimiter`` (default: any whitespace), ``label_map``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.rows import label_name, resolve_file
from maskctl.tasks.readers.split import carve_dev


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    return carve_dev(lambda s: read_file(card, spec, resolve_file(card, spec, s, data_dir)), spec, split, card)


def read_file(card: TaskCard, spec: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """Sentences of one CoNLL file as canonical tagging examples."""
    token_col, tag_col = int(spec.get("token_column", 0)), int(spec.get("tag_column", -1))
    expected = spec.get("columns")
    delimiter = spec.get("delimiter")
    sentences: list[dict[str, Any]] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            sentences.append({"tokens": list(tokens), "tags": list(tags)})
            tokens.clear()
            tags.clear()

    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                flush()
                continue
            parts = line.split(delimiter) if delimiter else line.split()
            if parts[0] == "-DOCSTART-":
                flush()
                continue
            if (expected and len(parts) != int(expected)) or len(parts) < 2:
                raise TaskError(
                    f"{path}:{line_no}: {len(parts)} columns, expected {expected or 'at least 2'}",
                    "check the file format (one token per line: word ... tag)",
                )
            tokens.append(parts[token_col])
            tags.append(label_name(card, spec, parts[tag_col], f"{path}:{line_no}"))
    flush()
    return sentences
