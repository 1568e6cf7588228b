"""One encoder batch from requests of many tasks and kinds.

Each task's requests are encoded and collated by their own kind (classification, tagging,
multiple choice: the same code ``maskctl eval`` uses), then their sequences are stacked into one
batch: multiple-choice rows are flattened (one sequence per ending) and every group is padded
on the right to the longest sequence of the batch. Each group remembers its rows, so the
shared encoder pass can apply that task's mask to them (``masking.served``) and its head
can read them back, cut to the group's own length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from maskctl.serving.tasks import ServedTask

SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class TaskRequests:
    """One task's requests waiting for a mixed batch: where they sit in the caller's list."""

    served: ServedTask
    indices: list[int] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.examples) * self.served.task.kind.sequences(self.examples[0])


@dataclass
class TaskGroup:
    """One task's requests inside a mixed batch."""

    served: ServedTask
    indices: list[int]  # positions of the requests in the caller's list
    examples: list[dict[str, Any]]
    batch: dict[str, torch.Tensor]  # the kind's own collated batch (labels are placeholders)
    start: int  # first row (sequence) of the group in the mixed batch
    stop: int
    length: int  # the group's own padded length
    truncated: set[int]  # positions (within the group) of examples that max_length cut
    kept_words: list[list[int]]  # tagging: the words each example's scores belong to


@dataclass
class MixedBatch:
    groups: list[TaskGroup]
    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask[, token_type_ids] of every row


def build_batch(parts: list[TaskRequests], tokenizers: dict[str, Any], device: torch.device) -> MixedBatch:
    """Encode and collate each task's examples with its kind, then stack all rows into one batch."""
    groups: list[TaskGroup] = []
    rows: list[dict[str, torch.Tensor]] = []
    start = 0
    # Smallest groups first: the short ones add their terms to one shared product, the long ones
    # (masking.served.DENSE_MIN_TOKENS) run as dense products of their own after them.
    for part in sorted(parts, key=lambda part: part.rows):
        served, indices, examples = part.served, part.indices, part.examples
        task = served.task
        tokenizer = tokenizers[task.kind.name]
        features = task.kind.encode(task.card, tokenizer, examples, served.max_length, served.options)
        batch = task.kind.collate(tokenizer)(features.items)
        flat = {k: batch[k].reshape(-1, batch[k].shape[-1]) for k in SEQUENCE_KEYS if k in batch}
        count = flat["input_ids"].shape[0]
        groups.append(TaskGroup(served, indices, examples, batch, start, start + count, flat["input_ids"].shape[1],
                                features.truncated, features.kept_words))
        rows.append(flat)
        start += count
    length = max(g.length for g in groups)
    keys = [k for k in SEQUENCE_KEYS if any(k in r for r in rows)]
    pad_id = next(iter(tokenizers.values())).pad_token_id or 0
    inputs = {}
    for key in keys:
        fill = pad_id if key == "input_ids" else 0
        parts_ = []
        for r in rows:
            t = r.get(key)
            if t is None:
                t = torch.zeros_like(r["input_ids"])
            parts_.append(torch.nn.functional.pad(t, (0, length - t.shape[1]), value=fill))
        inputs[key] = torch.cat(parts_).to(device)
    return MixedBatch(groups=groups, inputs=inputs)
