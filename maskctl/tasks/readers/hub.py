"""Hugging Face hub datasets through ``datasets.load_dataset`` (online, or from the cache).

Spec keys: ``path`` (dataset id, or a local dataset folder/script), optional ``name``
(configuration), ``splits: {train: train, dev: validation, test: test}``, ``label_map``,
``fields`` (the dataset's column names) and ``dev_from_train`` for datasets without a dev split.
Integer labels and tags are mapped to names through the dataset's ``ClassLabel`` features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.rows import to_example
from maskctl.tasks.readers.split import carve_dev

DEFAULT_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    return carve_dev(lambda s: _read_split(card, spec, s), spec, split, card)


def _read_split(card: TaskCard, spec: dict[str, Any], split: str) -> list[dict[str, Any]]:
    import datasets  # heavy: imported only when a hub task is read

    hub_split = {**DEFAULT_SPLITS, **spec.get("splits", {})}[split]
    try:
        data = datasets.load_dataset(spec["path"], spec.get("name"), split=hub_split)
    except Exception as exc:  # ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
        fix = "give the official files with --data-dir" if card.files else "check the dataset id"
        raise TaskError(
            f"cannot load dataset {spec['path']!r} split {hub_split!r} ({type(exc).__name__})",
            f"offline (HF_DATASETS_OFFLINE=1) it must be in the datasets cache; or {fix}",
        ) from exc
    names = {col: _class_names(feature) for col, feature in data.features.items()}
    examples = []
    for i, row in enumerate(data):
        row = {col: _named(value, names.get(col)) for col, value in row.items()}
        examples.append(to_example(card, spec, row, f"{spec['path']} {hub_split} row {i}"))
    return examples


def _class_names(feature) -> list[str] | None:
    names = getattr(feature, "names", None)
    if names is None:  # Sequence(ClassLabel) in datasets < 4, List(ClassLabel) after
        inner = getattr(feature, "feature", None)
        names = getattr(inner, "names", None)
    return names


def _named(value: Any, names: list[str] | None) -> Any:
    if names is None:
        return value
    if isinstance(value, list):
        return [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in value]
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else value
