"""Requests encoded once, and one encoder batch from encoded requests of many tasks and kinds.

``encode_inputs`` turns a task's canonical examples into model features with the task's kind
(the same code ``maskctl eval`` uses) in one tokenizer call: each request becomes an ``Encoded``
that knows its cost in a padded batch (``Kind.cost``: rows x length). A server encodes a request
when it arrives, before any queue (TEI's rule: validate and tokenise once), so the batcher
budgets real token counts and the compute thread never tokenises.

``build_batch`` collates each task's encoded requests with its kind, then stacks their sequences
into one batch: multiple-choice rows are flattened (one sequence per ending) and every group is
padded on the right to the longest sequence of the batch. Each group remembers its rows, so the
shared encoder pass can apply that task's mask to them (``masking.served``) and its head can
read them back, cut to the group's own length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from maskctl.serving.tasks import ServedTask

SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Encoded:
    """One request, checked and tokenised: what a batch is built from."""

    served: ServedTask
    example: dict[str, Any]  # the canonical example (its placeholder gold label included)
    features: dict[str, Any]  # what the kind's collate takes
    truncated: bool  # max_length (or the character bound before it) cut the input
    kept_words: list[int] | None  # tagging: the words its score rows belong to
    tokens: int  # its cost in a padded batch (``Kind.cost``)


def encode_inputs(served: ServedTask, examples: list[dict[str, Any]], tokenizer) -> list[Encoded]:
    """``examples`` of one task encoded by its kind in one call (``ValueError`` / ``TypeError``
    when the tokenizer refuses one of them)."""
    kind = served.task.kind
    features = kind.encode(served.task.card, tokenizer, examples, served.max_length, served.options)
    words = features.kept_words or [None] * len(examples)
    return [
        Encoded(served, example, item, i in features.truncated, words[i], kind.cost(item))
        for i, (example, item) in enumerate(zip(examples, features.items))
    ]


@dataclass
class TaskGroup:
    """One task's requests inside a mixed batch."""

    served: ServedTask
    indices: list[int]  # positions of the requests in the caller's list
    encoded: list[Encoded]
    batch: dict[str, torch.Tensor]  # the kind's own collated batch (labels are placeholders)
    start: int  # first row (sequence) of the group in the mixed batch
    stop: int
    length: int  # the group's own padded length


@dataclass
class MixedBatch:
    groups: list[TaskGroup]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)  # input_ids, attention_mask[, token_type_ids]


def build_batch(
    parts: dict[str, list[tuple[int, Encoded]]], tokenizers: dict[str, Any], device: torch.device
) -> MixedBatch:
    """Collate each task's encoded requests (``parts``: task name -> (index, encoded)) with its
    kind, then stack all rows into one batch."""
    groups: list[TaskGroup] = []
    rows: list[dict[str, torch.Tensor]] = []
    start = 0
    # Smallest groups first: the short ones add their terms to one shared product, the long ones
    # (masking.served.DENSE_MIN_TOKENS) run as dense products of their own after them.
    for items in sorted(parts.values(), key=lambda items: sum(e.tokens for _, e in items)):
        served = items[0][1].served
        tokenizer = tokenizers[served.task.kind.name]
        batch = served.task.kind.collate(tokenizer)([e.features for _, e in items])
        flat = {k: batch[k].reshape(-1, batch[k].shape[-1]) for k in SEQUENCE_KEYS if k in batch}
        count = flat["input_ids"].shape[0]
        groups.append(
            TaskGroup(
                served,
                [i for i, _ in items],
                [e for _, e in items],
                batch,
                start,
                start + count,
                flat["input_ids"].shape[1],
            )
        )
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
