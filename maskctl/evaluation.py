"""Evaluate a model on a task split: data loaders, per-example scores and the task metric.
Kept at the root: training scores dev with it and every reader of a bundle (``serving``, the
analyses) scores with it, and serving never imports ``training``.

``maskctl train`` scores its final dev metric through ``evaluate_model`` on the merged model,
and ``maskctl eval`` rebuilds that same merged model from the bundle
(``maskctl.serving.loading``) and calls the same function with the same batch size, so the
two numbers agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from maskctl.tasks import metrics
from maskctl.tasks.kinds import Features
from maskctl.tasks.task import Task


def make_loader(
    features: list[dict[str, Any]], collate, batch_size: int, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    # Always an own generator: without one, every DataLoader iteration draws its base seed from
    # torch's global generator, so a dev evaluation would shift the dropout stream of training.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(features, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=generator)


@torch.inference_mode()
def collect_scores(
    model: torch.nn.Module,
    loader: DataLoader,
    task: Task,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[torch.Tensor], list]:
    """Per-example score tensors (logits) and golds over ``loader``, model in eval mode.

    The model's train/eval mode is put back afterwards: a caller that evaluates between training
    steps must not silently continue without dropout (it also makes a training step faster).
    ``progress(1)`` is called after each batch.
    """
    was_training = model.training
    model.eval()
    scores: list[torch.Tensor] = []
    golds: list = []
    try:
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            s, g = task.kind.select(logits, batch)
            scores += s
            golds += g
            if progress is not None:
                progress(1)
    finally:
        model.train(was_training)
    return scores, golds


def argmax(scores: list[torch.Tensor]) -> list:
    """Predictions from score tensors: a label id each, or a list of them for tagging."""
    return [s.argmax(dim=-1).tolist() for s in scores]


def evaluate_model(
    model: torch.nn.Module,
    task: Task,
    features: Features,
    tokenizer,
    batch_size: int,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """The task metric on ``features``, plus the encoding's facts (e.g. excluded words);
    ``progress(1)`` after each of the ``ceil(len(features) / batch_size)`` batches."""
    loader = make_loader(features, task.kind.collate(tokenizer), batch_size)
    scores, golds = collect_scores(model, loader, task, device, progress)
    return {**task_metrics(task, golds, argmax(scores)), **features.stats}


def task_metrics(task: Task, golds: list, preds: list) -> dict[str, float]:
    """The task card's metric (and accuracy, counts) of predictions against golds."""
    return metrics.compute(task.card.metric, golds, preds, task.card.labels)
