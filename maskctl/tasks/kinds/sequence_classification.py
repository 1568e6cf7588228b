"""Sequence classification, single sentence or sentence pair: [CLS] -> pooler -> classifier."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorWithPadding


class SequenceClassification:
    name = "sequence-classification"
    auto_class = "AutoModelForSequenceClassification"

    def encode(self, card, tokenizer, examples: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
        label_ids = {label: i for i, label in enumerate(card.labels)}
        columns = [[ex[field] for ex in examples] for field in card.text_fields]
        encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        features = []
        for i, example in enumerate(examples):
            feature = {key: values[i] for key, values in encoded.items()}
            feature["labels"] = label_ids[example[card.label_field]]
            features.append(feature)
        return features

    def collate(self, tokenizer):
        return DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def predict(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[int], list[int]]:
        """(predicted label ids, gold label ids) for one batch."""
        return logits.argmax(dim=-1).tolist(), batch["labels"].tolist()
