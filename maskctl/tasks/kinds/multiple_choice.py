"""Multiple choice (SWAG): each (context, ending) pair is encoded on its own, the model gives
one logit per pair ([CLS] -> pooler -> classifier), and a softmax runs over the endings."""

from __future__ import annotations

from typing import Any

import torch

from maskctl.errors import TaskError
from maskctl.tasks.kinds.base import Features, cut_rows


class MultipleChoice:
    name = "multiple-choice"
    auto_class = "AutoModelForMultipleChoice"
    tokenizer_kwargs: dict[str, Any] = {}

    def encode(self, card, tokenizer, examples: list[dict[str, Any]], max_length: int,
               options: dict[str, Any] | None = None) -> Features:
        label_ids = {label: i for i, label in enumerate(card.labels)}
        n_choices = len(card.labels)
        firsts, seconds = [], []
        for example in examples:
            if len(example["endings"]) != n_choices:
                raise TaskError(f"task {card.name!r}: an example has {len(example['endings'])} endings, "
                                f"the card's labels name {n_choices}", "give every example the same endings")
            firsts += [example["context"]] * n_choices
            seconds += example["endings"]
        encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        items = []
        for i, example in enumerate(examples):
            rows = slice(i * n_choices, (i + 1) * n_choices)
            item = {key: values[rows] for key, values in encoded.items()}
            item["labels"] = label_ids[example["label"]]
            items.append(item)
        cut = cut_rows(tokenizer, [firsts, seconds], encoded, max_length)
        return Features(items, truncated={row // n_choices for row in cut})

    def collate(self, tokenizer):
        def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
            n = len(batch[0]["input_ids"])
            flat = [{k: v[j] for k, v in item.items() if k != "labels"} for item in batch for j in range(n)]
            padded = tokenizer.pad(flat, return_tensors="pt")
            out = {k: v.view(len(batch), n, -1) for k, v in padded.items()}
            out["labels"] = torch.tensor([item["labels"] for item in batch])
            return out

        return collate

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
        """Per example: one logit per ending, and the gold ending."""
        return list(logits.float().cpu()), batch["labels"].tolist()
