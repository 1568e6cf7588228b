"""What ``MaskedModel`` keeps per loaded task (``ServedTask``) beside what its served layers hold
(its flips and tuned deltas, ``masking.served``): the task, its head with the head masks
multiplied in, its encoding settings, and the few facts ``describe`` reports.

Why so little: a server may hold thousands of tasks, and the parsed bundle description (layers,
coding entries, the dev history) is several times a task's flips; once a bundle is loaded
nothing reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from maskctl.bundle.meta import BundleMeta
from maskctl.choices import MAX_LENGTH
from maskctl.tasks.task import Task


@dataclass
class ServedTask:
    """One loaded task: its card, effective head, encoding settings and description."""

    name: str
    task: Task
    path: str  # the bundle it was loaded from
    head: dict[str, torch.Tensor]  # head parameters with the bundle's head masks multiplied in
    net_key: tuple[str, int]  # (auto class, number of labels): the task model its head runs in
    max_length: int = MAX_LENGTH
    options: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # base model, dev metrics, final sparsity

    @staticmethod
    def facts_of(info: BundleMeta) -> dict[str, Any]:
        """What ``MaskedModel.describe`` reports of a bundle beyond its card."""
        return {
            "base_model": info.base_model.spec,
            "sparsity": info.sparsity.get("final"),
            "metrics": {k: v for k, v in info.dev.items() if not isinstance(v, (dict, list))},
        }

    def head_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.head.values())
