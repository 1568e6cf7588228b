"""Deterministic train/dev/test splits for corpora that ship without one."""

from __future__ import annotations

from typing import Any

from sklearn.model_selection import train_test_split


def split_examples(examples: list[dict[str, Any]], spec: dict[str, Any], split: str,
                   label_field: str) -> list[dict[str, Any]]:
    """Cut ``examples`` into train/dev/test by ``spec`` ({train, dev, test, seed, stratify}).

    Two calls of scikit-learn's ``train_test_split`` with ``random_state=seed``: first the
    train part off the whole, then dev from test in the rest; stratified by label if asked.
    """
    seed = int(spec.get("seed", 0))
    dev, test = float(spec.get("dev", 0.15)), float(spec.get("test", 0.15))
    stratify = bool(spec.get("stratify", True))
    labels = [ex[label_field] for ex in examples]
    index = list(range(len(examples)))
    train_idx, rest_idx = train_test_split(
        index, test_size=dev + test, random_state=seed, stratify=labels if stratify else None
    )
    rest_labels = [labels[i] for i in rest_idx]
    dev_idx, test_idx = train_test_split(
        rest_idx, test_size=test / (dev + test), random_state=seed,
        stratify=rest_labels if stratify else None,
    )
    chosen = {"train": train_idx, "dev": dev_idx, "test": test_idx}[split]
    return [examples[i] for i in sorted(chosen)]
