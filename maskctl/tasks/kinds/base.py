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
    # Examples (by index) that max_length cut: serving says so in each prediction.
    truncated: set[int] = field(default_factory=set)
    # Tagging: per example, the indices of the words that got a label position (in order), so a
    # prediction lines its scores up with the right words even when a word has no pieces.
    kept_words: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def cut_rows(tokenizer, columns: list[list[Any]], encoded, max_length: int) -> set[int]:
    """Rows of ``encoded`` (tokenized with truncation) that max_length cut. Only a row of
    exactly max_length ids can have been cut, so only those are tokenized again in full."""
    candidates = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) >= max_length]
    if not candidates:
        return set()
    again = tokenizer(*[[column[i] for i in candidates] for column in columns], truncation=False, verbose=False)
    return {i for i, ids in zip(candidates, again["input_ids"]) if len(ids) > max_length}


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
