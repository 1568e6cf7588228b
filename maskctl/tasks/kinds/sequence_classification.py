"""Sequence classification, single sentence or sentence pair: [CLS] -> pooler -> classifier."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorWithPadding

from maskctl.tasks.kinds.base import Features, cut_rows


class SequenceClassification:
    name = "sequence-classification"
    auto_class = "AutoModelForSequenceClassification"
    tokenizer_kwargs: dict[str, Any] = {}

    def encode(self, card, tokenizer, examples: list[dict[str, Any]], max_length: int,
               options: dict[str, Any] | None = None) -> Features:
        label_ids = {label: i for i, label in enumerate(card.labels)}
        texts = [ex["text"] for ex in examples]
        pairs = [ex["text_pair"] for ex in examples]
        columns = [texts, pairs] if any(p is not None for p in pairs) else [texts]
        if len(columns) == 2 and any(p is None for p in pairs):
            pairs[:] = [p or "" for p in pairs]
        encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        items = []
        for i, example in enumerate(examples):
            item = {key: values[i] for key, values in encoded.items()}
            item["labels"] = label_ids[example["label"]]
            items.append(item)
        return Features(items, truncated=cut_rows(tokenizer, columns, encoded, max_length))

    def collate(self, tokenizer):
        return DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
        """Per example: its class logits, and its gold label id."""
        return list(logits.float().cpu()), batch["labels"].tolist()
