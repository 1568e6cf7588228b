"""A task from a user's own data files, with no YAML: ``maskctl train --train-file a.csv``.

The card is built in memory (kind, columns, labels inferred from the train file) and stored in
the bundle like any other, so the bundle stays self-describing. The kind is given or inferred:
a label column holding lists is token tagging, an ``endings`` column multiple choice, anything
else sequence classification. Labels are the sorted distinct values of the train file's label
column (numerically when they are all numbers). The card's data spec keeps file names only, so
no machine path lands in a bundle; ``maskctl eval --file`` / ``--data-dir`` point at them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds import KINDS, get_kind, infer_kind, named_columns
from maskctl.tasks.kinds.base import RowView
from maskctl.tasks.readers.datafiles import DataFile, load_file

INFER_ROWS = 50  # rows of the train file a kind looks at to recognise it
ORIGIN = "data files"  # spec["origin"]: errors then name the command-line flags, not card keys
FLAGS = {"input": "--text-column", "label": "--label-column"}


@dataclass(frozen=True)
class DataFiles:
    """What the user passed: the files, the columns and optionally the kind."""

    train: str
    validation: str | None = None
    test: str | None = None
    text_columns: tuple[str, ...] = ()
    label_column: str | None = None
    kind: str | None = None
    validation_split: float | None = None
    name: str | None = None
    seed: int = 0


def card_from_files(files: DataFiles) -> TaskCard:
    """The task card of ``files``; every column and label checked before any model loads."""
    train = load_file(files.train)
    kind_name = files.kind or infer_kind(train.columns, train.rows[:INFER_ROWS], files.label_column)
    kind = get_kind(kind_name)
    fields = named_columns(kind, kind.default_fields, files.text_columns, files.label_column)
    datasets = {"train": train}
    for split, path in (("dev", files.validation), ("test", files.test)):
        if path:
            datasets[split] = load_file(path)
    for data in datasets.values():
        check_columns(data, fields, kind)
    # Files beside the train file by name (the card reads them from its base_dir, which
    # bundles never store); a file in another folder by its path, for this run only.
    base_dir = Path(files.train).resolve().parent
    source: dict[str, Any] = {
        "reader": "file",
        "origin": ORIGIN,
        "files": {
            split: data.path.name if data.path.resolve().parent == base_dir else str(data.path)
            for split, data in datasets.items()
        },
    }
    if "dev" not in datasets:
        source["dev_from_train"] = {"fraction": files.validation_split or 0.1, "seed": files.seed}
    name = files.name or _task_name(Path(files.train))
    first = RowView(SimpleNamespace(fields=fields), source, train.rows[0], train.where(0))  # no labels yet
    labels = kind.infer_labels(_label_values(train, fields[kind.label_role]), first)
    return TaskCard(
        name=name,
        kind=kind_name,
        labels=labels,
        metric=kind.default_metric,
        source=source,
        fields=fields,
        base_dir=str(base_dir),
        description=f"built from {', '.join(d.path.name for d in datasets.values())} by maskctl train",
    )


def check_columns(data: DataFile, fields: dict[str, Any], kind) -> None:
    """Every column ``fields`` names is one of the file's; else one error naming the file's
    columns and the option that names a column (``--text-column``, ``--label-column``)."""
    for role, names in fields.items():
        for name in names if isinstance(names, list) else [names]:
            if name in data.columns:
                continue
            flag = FLAGS["input"] if role == kind.input_role else FLAGS["label"] if role == kind.label_role else None
            fix = f"pass {flag} NAME" if flag else f"name the column {name!r} (the {role} of {kind.name})"
            raise TaskError(
                f"{data.path}: no column {name!r} for the {role} (columns: {', '.join(data.columns)})",
                fix + (" or --kind " + "|".join(KINDS) if role == kind.label_role else ""),
            )


def _label_values(train: DataFile, column: str) -> list[str]:
    """Every label of the train file as a name (flattened for tagging); empty or mixed-type
    labels are refused with the row."""
    values: list[Any] = []
    for i, row in enumerate(train.rows):
        value = row[column]
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None or (isinstance(item, str) and not item.strip()):
                raise TaskError(
                    f"{train.where(i)}: empty label in column {column!r}", "give every row a label, or drop the row"
                )
            if isinstance(item, (dict, list)):
                raise TaskError(
                    f"{train.where(i)}: label {item!r} in column {column!r} is not a name or number",
                    "give a label name per row (per word for tagging)",
                )
        values.extend(items)
    types = {type(v) for v in values}
    if len(types) > 1 and not types <= {int, float}:  # JSON's 1 and "pos" in one column
        shown = ", ".join(sorted(t.__name__ for t in types))
        raise TaskError(
            f"{train.path}: the label column {column!r} mixes types ({shown})",
            "write every label the same way, e.g. all as strings",
        )
    return [str(v).strip() for v in values]  # as RowView.label names them


def _task_name(path: Path) -> str:
    """``reviews-train.csv`` -> ``reviews``; ``train.csv`` alone -> its folder's name."""
    stem = path.name.split(".")[0]
    for suffix in ("-train", "_train", ".train"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    if stem.lower() in ("train", ""):
        stem = path.resolve().parent.name or "task"
    return stem
