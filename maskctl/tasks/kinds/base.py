"""The interface every task kind implements."""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Kind(Protocol):
    """How a kind of task meets a transformers model.

    ``auto_class`` names the ``transformers`` Auto class that builds the head; ``encode``
    turns examples into model features (with ``labels``); ``collate`` pads a batch;
    ``predict`` turns a batch of logits into label ids comparable with ``labels``.
    """

    name: str
    auto_class: str

    def encode(self, card, tokenizer, examples: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]: ...

    def collate(self, tokenizer): ...

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[int], list[int]]: ...
