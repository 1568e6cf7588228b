"""Hugging Face hub datasets through ``datasets.load_dataset`` (online, or from the cache).

Source keys: ``path`` (dataset id, or a local dataset script/folder), optional ``name``
(configuration), ``splits: {train: train, dev: validation, test: test}``. Integer labels are
mapped to names through the dataset's ``ClassLabel`` feature, else the card's label order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard

DEFAULT_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def read(card: TaskCard, split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    import datasets  # heavy: imported only when a hub task is read

    src = card.source
    hub_split = {**DEFAULT_SPLITS, **src.get("splits", {})}[split]
    try:
        data = datasets.load_dataset(src["path"], src.get("name"), split=hub_split,
                                     data_dir=str(data_dir) if data_dir else None)
    except Exception as exc:  # ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
        raise TaskError(
            f"cannot load dataset {src['path']!r} split {hub_split!r} ({type(exc).__name__})",
            "when offline (HF_DATASETS_OFFLINE=1) it must be in the datasets cache; "
            "or give the official files with --data-dir",
        ) from exc
    feature = data.features.get(card.label_field)
    names = getattr(feature, "names", None) or card.labels
    examples = []
    for i, row in enumerate(data):
        label = row[card.label_field]
        label = names[label] if isinstance(label, int) and 0 <= label < len(names) else str(label)
        if label not in card.labels:
            raise TaskError(f"{src['path']} {hub_split} row {i}: label {label!r} is not one of {card.labels}",
                            "fix the card's `labels:`")
        examples.append({**{f: row[f] for f in card.text_fields}, card.label_field: label})
    return examples
