"""The interface every task kind implements, and the encoded-features container."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass
class Features:
    """Model-ready features of one split, plus facts about the encoding (e.g. excluded words)."""

    items: list[dict[str, Any]]
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


class Kind(Protocol):
    """How a kind of task meets a transformers model.

    ``auto_class`` names the transformers Auto class that builds the head; ``tokenizer_kwargs``
    are passed when loading the tokenizer; ``encode`` turns canonical examples into features
    (with ``labels``); ``collate`` pads a batch; ``select`` cuts a batch of logits into
    per-example score tensors (classes, endings, or words x tags for tagging) with their golds.
    The argmax of a score tensor is the prediction; ensembles add score tensors up.
    """

    name: str
    auto_class: str
    tokenizer_kwargs: dict[str, Any]

    def encode(self, card, tokenizer, examples: list[dict[str, Any]], max_length: int,
               options: dict[str, Any]) -> Features: ...

    def collate(self, tokenizer): ...

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list]: ...
