"""Per-task heads around one shared encoder: each kind's transformers task model is built once,
empty, with a stand-in encoder that hands back the rows the shared pass computed; each task's
head values come from its bundle at call time (``torch.func.functional_call``)."""

from __future__ import annotations

from typing import Any

import torch
import transformers

from maskctl.tasks.task import Task


class Precomputed(torch.nn.Module):
    """Stands in for the encoder inside every task model: returns the rows computed already."""

    def __init__(self) -> None:
        super().__init__()
        self.output: Any = None

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.output


def task_model(base: torch.nn.Module, task: Task, prefix: str, encoder: torch.nn.Module, device):
    """A task model of ``task``'s kind whose encoder is ``encoder``; its head values come from
    each bundle at call time (``functional_call``), so it is built empty."""
    config = base.config.__class__.from_dict(base.config.to_dict())
    config.num_labels = len(task.labels)
    config.id2label = dict(enumerate(task.labels))
    config.label2id = {label: i for i, label in enumerate(task.labels)}
    with torch.device("meta"):  # no memory for the weights: the encoder is replaced, the head comes per call
        net = getattr(transformers, task.kind.auto_class).from_config(config)
    setattr(net, prefix, encoder)
    net.to_empty(device=device)
    return net.eval()
