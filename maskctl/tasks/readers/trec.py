"""TREC question classification files: ``COARSE:fine question words`` per line.

The coarse label (before the colon) is the class (6 classes: ABBR, DESC, ENTY, HUM, LOC, NUM).
The files are Latin-1 encoded; TREC has no dev split (use ``dev_from_train``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.rows import label_name, resolve_file
from maskctl.tasks.readers.split import carve_dev


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    return carve_dev(lambda s: _read_file(card, spec, resolve_file(card, spec, s, data_dir)), spec, split, card)


def _read_file(card: TaskCard, spec: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    examples = []
    for line_no, line in enumerate(path.read_bytes().decode(spec.get("encoding", "latin-1")).splitlines(), 1):
        if not line.strip():
            continue
        head, _, question = line.partition(" ")
        coarse, colon, _fine = head.partition(":")
        if not colon or not question.strip():
            raise TaskError(
                f"{path}:{line_no}: expected `LABEL:fine question`, got {line[:40]!r}",
                "use the official TREC files (train_5500.label, TREC_10.label)",
            )
        label = label_name(card, spec, coarse, f"{path}:{line_no}")
        examples.append({"text": question.strip(), "text_pair": None, "label": label})
    return examples
