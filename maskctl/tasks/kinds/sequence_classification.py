"""Sequence classification, single sentence or sentence pair: [CLS] -> pooler -> classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maskctl.tasks.kinds.base import KINDS, Features, KindBase, RowView, bounded, cut_rows, sorted_labels

if TYPE_CHECKING:  # annotations only: a card is read (`maskctl tasks`) without loading torch
    import torch


@dataclass
class Classification:
    """What a user gets for one text (or pair)."""

    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool = False  # the text was longer than the bundle's max length and was cut


@KINDS.register("sequence-classification")
class SequenceClassification(KindBase):
    name = "sequence-classification"
    auto_class = "AutoModelForSequenceClassification"
    tokenizer_kwargs: dict[str, Any] = {}
    default_fields = {"text": "text", "label": "label"}  # text may take two columns: a sentence pair
    input_role, label_role, default_metric = "text", "label", "accuracy"  # what --text-column/--label-column name
    input_hint = 'give a text, a [text, text_pair] pair or {"text": ..., "text_pair": ...}'
    pipeline_tag = "text-classification"
    labels_sequences = True
    cli_example = "maskctl predict {ref} --text 'A sentence to label'"
    input_fields = {"text": 1, "text_pair": 1}
    result_type = Classification

    def example_from_row(self, row: RowView) -> dict[str, Any]:
        texts = [str(t) for t in row.columns("text")]
        if row.spec.get("join"):  # e.g. AG News: title and description read as one text
            texts = [str(row.spec["join"]).join(t.strip() for t in texts)]
        label = row.label(row.columns("label")[0])
        return {"text": texts[0], "text_pair": texts[1] if len(texts) > 1 else None, "label": label}

    def infer_labels(self, values: list[str], first: RowView) -> list[str]:
        return sorted_labels(values)

    def input_from_columns(self, role: str, values: list[Any]) -> dict[str, Any]:
        """Two text columns are a sentence pair: ``text`` and ``text_pair``."""
        if role == "text" and len(values) == 2:
            return {"text": values[0], "text_pair": values[1]}
        return super().input_from_columns(role, values)

    def example_from_input(self, labels: list[str], item: Any) -> dict[str, Any]:
        """A text, a ``[text, text_pair]`` pair or ``{"text", "text_pair"}``; ``ValueError`` else."""
        if isinstance(item, dict):
            text, pair = item.get("text"), item.get("text_pair")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            text, pair = item
        else:
            text, pair = item, None
        if not isinstance(text, str):
            raise ValueError('needs "text" (and optionally "text_pair")')
        if pair is not None and not isinstance(pair, str):
            raise ValueError(f'needs "text_pair" to be a text, not {type(pair).__name__}')
        return {"text": text, "text_pair": pair, "label": labels[0]}

    def encode(
        self, card, tokenizer, examples: list[dict[str, Any]], max_length: int, options: dict[str, Any] | None = None
    ) -> Features:
        label_ids = {label: i for i, label in enumerate(card.labels)}
        texts, cut_texts = bounded([ex["text"] for ex in examples], max_length)  # each side of a pair
        pairs, cut_pairs = bounded([ex["text_pair"] for ex in examples], max_length)
        columns = [texts, pairs] if any(p is not None for p in pairs) else [texts]
        if len(columns) == 2 and any(p is None for p in pairs):
            pairs[:] = [p or "" for p in pairs]
        encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        items = []
        for i, example in enumerate(examples):
            item = {key: values[i] for key, values in encoded.items()}
            item["labels"] = label_ids[example["label"]]
            items.append(item)
        return Features(items, truncated=cut_rows(tokenizer, columns, encoded, max_length) | cut_texts | cut_pairs)

    def collate(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
        """Per example: its class logits, and its gold label id."""
        return list(logits.float().cpu()), batch["labels"].tolist()

    def prediction(
        self, labels: list[str], example: dict[str, Any], scores: torch.Tensor, truncated: bool = False
    ) -> Classification:
        probs = scores.softmax(-1)
        best = int(probs.argmax())
        return Classification(
            labels[best], float(probs[best]), {lab: float(p) for lab, p in zip(labels, probs)}, truncated
        )
