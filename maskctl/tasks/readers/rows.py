"""Turn one raw row (column -> value) into a canonical example, checking fields and labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard


def resolve_file(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> Path:
    """The file of ``split`` under ``spec['files']``, relative to ``--data-dir`` or the card."""
    files = spec.get("files", {})
    if split not in files:
        raise TaskError(f"task {card.name!r} has no {split} file",
                        f"add `files: {{{split}: ...}}` to its card" + _hidden_hint(spec, split))
    path = Path(str(files[split])).expanduser()
    if not path.is_absolute():
        path = (data_dir or Path(card.base_dir or ".")) / path
    if not path.is_file():
        raise TaskError(f"{path}: the {split} file of task {card.name!r} does not exist",
                        "check --data-dir or the file names under `files:` in the card")
    return path


def _hidden_hint(spec: dict[str, Any], split: str) -> str:
    return f" ({spec['note']})" if spec.get("note") else ""


def label_name(card: TaskCard, spec: dict[str, Any], value: Any, where: str) -> str:
    """Map a raw label through the spec's ``label_map`` and check it is one of the card's."""
    label = str(value).strip()
    mapping = {str(k): str(v) for k, v in (spec.get("label_map") or {}).items()}
    label = mapping.get(label, label)
    if label not in card.labels:
        shown = card.labels if len(card.labels) <= 12 else card.labels[:12] + ["..."]
        raise TaskError(f"{where}: label {label!r} is not one of {shown}",
                        "fix the label, add it to the card's `labels:` or map it with `label_map:`")
    return label


def _columns(card: TaskCard, spec: dict[str, Any], row: dict[str, Any], role: str, where: str) -> list[Any]:
    names = {**card.fields, **(spec.get("fields") or {})}[role]  # a source may name columns its own way
    names = names if isinstance(names, list) else [names]
    for name in names:
        if name not in row or row[name] is None:
            raise TaskError(f"{where}: no field {name!r} (has {sorted(map(str, row))})",
                            f"fix `fields: {{{role}: ...}}` in the card or the file's columns")
    return [row[name] for name in names]


def to_example(card: TaskCard, spec: dict[str, Any], row: dict[str, Any], where: str) -> dict[str, Any]:
    """A canonical example of ``card.kind`` from a raw row; errors name ``where`` (file:line).

    ``spec`` may rename columns (``fields:``), ``join`` text columns into one, map labels
    (``label_map``) and, for multiple choice, prefix every ending with a column (``ending_prefix``).
    """
    if card.kind == "sequence-classification":
        texts = [str(t) for t in _columns(card, spec, row, "text", where)]
        if spec.get("join"):  # e.g. AG News: title and description read as one text
            texts = [str(spec["join"]).join(t.strip() for t in texts)]
        label = label_name(card, spec, _columns(card, spec, row, "label", where)[0], where)
        return {"text": texts[0], "text_pair": texts[1] if len(texts) > 1 else None, "label": label}
    if card.kind == "token-tagging":
        tokens = _columns(card, spec, row, "tokens", where)[0]
        tags = _columns(card, spec, row, "tags", where)[0]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise TaskError(f"{where}: tokens and tags must be lists of the same length",
                            "write one tag per token")
        return {"tokens": [str(t) for t in tokens], "tags": [label_name(card, spec, t, where) for t in tags]}
    context = " ".join(str(c) for c in _columns(card, spec, row, "context", where))
    endings = _columns(card, spec, row, "endings", where)
    if len(endings) == 1 and isinstance(endings[0], list):
        endings = endings[0]
    prefix = spec.get("ending_prefix")  # SWAG: each ending continues the second sentence
    if prefix:
        start = str(row.get(prefix, "")).strip()
        endings = [f"{start} {e}".strip() for e in endings]
    label = label_name(card, spec, _columns(card, spec, row, "label", where)[0], where)
    return {"context": context, "endings": [str(e) for e in endings], "label": label}
