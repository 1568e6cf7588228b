"""``maskctl eval``: a bundle scored on a split of its task, or on a file of the user's, through
the one loader (``serving.loading.load_masked``) and the same ``evaluate_model`` training scored
dev with, so the two numbers agree exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from maskctl.bundle.format import load_bundle
from maskctl.devices import resolve_device
from maskctl.errors import TaskError
from maskctl.evaluation import evaluate_model
from maskctl.serving.loading import load_masked
from maskctl.tasks.card import canonical_split
from maskctl.tasks.readers.datafiles import load_file
from maskctl.training.callbacks import TrainCallback, phase


@dataclass
class EvalResult:
    bundle: Path
    task: str
    split: str
    metrics: dict[str, float]
    trained_dev: dict[str, float] | None


def evaluate_bundle(
    path: str | Path,
    split: str = "dev",
    model: str | None = None,
    data_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    file: str | Path | None = None,
    text_columns: tuple[str, ...] = (),
    label_column: str | None = None,
    callback: TrainCallback | None = None,
) -> EvalResult:
    """``maskctl eval``: score a bundle on a split of its task, or on ``file`` (any data file
    with the task's columns, or the ones ``text_columns`` / ``label_column`` name; ``split``
    then only names the result). ``callback`` sees the phases as a training run's do: loading
    the model, reading and tokenising the split, and the evaluation's batches."""
    callback = callback or TrainCallback()
    split = canonical_split(split)
    if file is not None:
        load_file(file)  # a missing or unreadable file fails before the model loads
    elif text_columns or label_column:
        raise TaskError("--text-column and --label-column name the columns of --file", "give --file too")
    bundle = load_bundle(path)
    dev = resolve_device(device)
    with phase(callback, "loading model"):
        masked = load_masked(bundle, model=model, device=dev)
    task = masked.task.on_file(file, split, tuple(text_columns), label_column) if file is not None else masked.task
    record = bundle.info.training
    features = record.features(task, split, masked.tokenizer, data_dir, stage=functools.partial(phase, callback))
    batch = batch_size or record.eval_batch_size
    with phase(callback, f"evaluating {split}", -(-len(features) // batch), "batches") as advance:
        metrics = evaluate_model(masked.model, task, features, masked.tokenizer, batch, dev, progress=advance)
    return EvalResult(
        bundle=bundle.path or Path(path),
        task=masked.task.name,
        split=split,
        metrics=metrics,
        trained_dev=bundle.info.dev or None,
    )
