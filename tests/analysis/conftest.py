"""Real bundles and a finetuned folder, trained briefly on the tiny offline models."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.conftest import make_sentences


def write_binary_task(root: Path) -> Path:
    """A second task on the same words: only the pos/neg sentences, 2 labels (another head shape)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, seed in (("train", 21), ("dev", 22), ("test", 23)):
        rows = [row for row in make_sentences(160, seed) if row[1] in ("pos", "neg")]
        with (root / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "label"])
            writer.writerows(rows)
    card = root / "sentiment.yaml"
    card.write_text(
        "name: sentiment\nkind: sequence-classification\nlabels: [pos, neg]\nmetric: accuracy\n"
        "fields: {text: sentence}\n"
        "source: {reader: csv, files: {train: train.csv, dev: dev.csv, test: test.csv}}\n"
        "defaults: {epochs: 1}\n",
        encoding="utf-8",
    )
    return card


def run(model, task, out, **kw):
    args = {
        "model": str(model),
        "task": str(task),
        "output": str(out),
        "batch_size": 16,
        "lr": 1e-2,
        "epochs": 1,
        "seed": 0,
    }
    return train(TrainArgs(**{**args, **kw}))


@pytest.fixture(scope="session")
def binary_task(tmp_path_factory) -> Path:
    return write_binary_task(tmp_path_factory.mktemp("binary"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, pretrained_tiny_bert, tiny_bert, keyword_task, binary_task) -> dict[str, Path]:
    """Mask bundles on the "pretrained" tiny BERT (a, b: seed 0; c: seed 1; binary: another task
    with 2 labels), one on another base (other), and a finetuned folder of a's task and seed."""
    root = tmp_path_factory.mktemp("trained")
    out = {name: root / f"{name}.bundle" for name in ("a", "b", "c", "binary", "other")}
    run(pretrained_tiny_bert, keyword_task, out["a"])
    run(pretrained_tiny_bert, keyword_task, out["b"], lr=3e-2, max_train_samples=96)
    run(pretrained_tiny_bert, keyword_task, out["c"], seed=1)
    run(pretrained_tiny_bert, binary_task, out["binary"])
    run(tiny_bert, keyword_task, out["other"], max_steps=2)
    out["pretrained"] = pretrained_tiny_bert
    out["finetuned"] = root / "finetuned"
    run(pretrained_tiny_bert, keyword_task, out["finetuned"], method="finetune", lr=1e-3)
    return out
