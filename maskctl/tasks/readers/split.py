"""Deterministic splits for corpora that ship without one (or without a dev split)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _stratify(examples: list[dict[str, Any]], wanted: bool) -> list[str] | None:
    """Stratify by label where examples have one (classification, choice), not for tagging."""
    if not wanted or not examples or "label" not in examples[0]:
        return None
    return [ex["label"] for ex in examples]


def _split(index: list[int], size: float, seed: int, stratify: list[str] | None):
    """scikit-learn's train_test_split; plain random when a split is too small to stratify.
    (Imported here: a serving process reads task cards through this package and must not load
    scikit-learn and scipy.)"""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(index, test_size=size, random_state=seed, stratify=stratify)
    except ValueError:
        if stratify is None:
            raise
        return train_test_split(index, test_size=size, random_state=seed)


def split_examples(examples: list[dict[str, Any]], spec: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """Cut ``examples`` into train/dev/test by ``spec`` ({train, dev, test, seed, stratify}).

    Two calls of scikit-learn's ``train_test_split`` with ``random_state=seed``: first the
    train part off the whole, then dev from test in the rest; stratified by label if asked.
    Each split keeps the corpus order.
    """
    seed = int(spec.get("seed", 0))
    dev, test = float(spec.get("dev", 0.15)), float(spec.get("test", 0.15))
    stratify = bool(spec.get("stratify", True))
    index = list(range(len(examples)))
    train_idx, rest_idx = _split(index, dev + test, seed, _stratify(examples, stratify))
    rest = [examples[i] for i in rest_idx]
    dev_idx, test_idx = _split(rest_idx, test / (dev + test), seed, _stratify(rest, stratify))
    chosen = {"train": train_idx, "dev": dev_idx, "test": test_idx}[split]
    return [examples[i] for i in sorted(chosen)]


def carve_dev(
    read: Callable[[str], list[dict[str, Any]]], spec: dict[str, Any], split: str, card: Any = None
) -> list[dict[str, Any]]:
    """Read ``split``; with ``dev_from_train: {fraction, seed}`` in ``spec`` and no dev file,
    dev is a (stratified) fraction of the train file and train is the rest (TREC, AG News)."""
    carve = spec.get("dev_from_train")
    if not carve or split == "test" or "dev" in (spec.get("files") or {}) or "dev" in (spec.get("splits") or {}):
        return read(split)
    examples = read("train")
    index = list(range(len(examples)))
    train_idx, dev_idx = _split(
        index,
        float(carve.get("fraction", 0.1)),
        int(carve.get("seed", 0)),
        _stratify(examples, carve.get("stratify", True)),
    )
    return [examples[i] for i in sorted(train_idx if split == "train" else dev_idx)]
