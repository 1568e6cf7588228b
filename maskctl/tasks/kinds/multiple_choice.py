"""Multiple choice (SWAG): each (context, ending) pair is encoded on its own, the model gives
one logit per pair ([CLS] -> pooler -> classifier), and a softmax runs over the endings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maskctl.errors import TaskError
from maskctl.tasks.kinds.base import KINDS, Features, KindBase, RowView, bounded, cut_rows

if TYPE_CHECKING:  # annotations only: a card is read (`maskctl tasks`) without loading torch
    import torch


@dataclass
class Choice:
    """What a user gets for one context and its endings."""

    choice: int
    label: str
    score: float
    probabilities: list[float]
    truncated: bool = False  # a context + ending was longer than the bundle's max length and was cut


@KINDS.register("multiple-choice")
class MultipleChoice(KindBase):
    name = "multiple-choice"
    auto_class = "AutoModelForMultipleChoice"
    tokenizer_kwargs: dict[str, Any] = {}
    default_fields = {"context": "context", "endings": "endings", "label": "label"}
    input_role, label_role, default_metric = "context", "label", "accuracy"
    input_hint = 'give {"context": ..., "endings": [...]}'
    pipeline_tag = "multiple-choice"
    labels_sequences = False  # one of several endings
    cli_example = (
        'echo \'{"context": "She opened the door", "endings": ["and walked in.", "and flew."]}\' '
        "| maskctl predict {ref} --input -"
    )
    input_fields = {"context": 1, "endings": 2}
    result_type = Choice

    def example_from_row(self, row: RowView) -> dict[str, Any]:
        context = " ".join(str(c) for c in row.columns("context"))
        endings = row.columns("endings")
        if len(endings) == 1 and isinstance(endings[0], list):
            endings = endings[0]
        prefix = row.spec.get("ending_prefix")  # SWAG: each ending continues the second sentence
        if prefix:
            start = str(row.row.get(prefix, "")).strip()
            endings = [f"{start} {e}".strip() for e in endings]
        return {"context": context, "endings": [str(e) for e in endings], "label": row.label(row.columns("label")[0])}

    def infer_labels(self, values: list[str], first: RowView) -> list[str]:
        """An ending's index: as many labels as endings, whichever occur in the train file."""
        endings = first.columns("endings")
        labels = [
            str(i)
            for i in range(len(endings[0]) if len(endings) == 1 and isinstance(endings[0], list) else len(endings))
        ]
        wrong = sorted(set(values) - set(labels))
        if wrong:
            raise TaskError(
                f"labels {wrong[:5]} are not ending indices 0..{len(labels) - 1}",
                "give the index of the right ending as the label",
            )
        return labels

    @classmethod
    def recognises(cls, columns: list[str], rows: list[dict[str, Any]], label_column: str | None) -> bool:
        """A file with an endings column whose labels are not lists (a list of labels per row is
        tagging's file, whatever its columns are called): the kinds are asked in any order."""
        column = label_column or cls.default_fields[cls.label_role]
        return cls.default_fields["endings"] in columns and not any(isinstance(row.get(column), list) for row in rows)

    def input_from_columns(self, role: str, values: list[Any]) -> dict[str, Any]:
        """Several ending columns are the list of endings; several context columns one text."""
        if role == "endings" and len(values) > 1:
            return {role: values}
        if role == "context" and len(values) > 1:
            return {role: " ".join(str(v) for v in values)}
        return super().input_from_columns(role, values)

    def example_from_input(self, labels: list[str], item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("endings"), list) or "context" not in item:
            raise ValueError('needs "context" and "endings" (a list)')
        if len(item["endings"]) != len(labels):
            raise ValueError(f"needs {len(labels)} endings")
        return {"context": str(item["context"]), "endings": [str(e) for e in item["endings"]], "label": labels[0]}

    def encode(
        self, card, tokenizer, examples: list[dict[str, Any]], max_length: int, options: dict[str, Any] | None = None
    ) -> Features:
        label_ids = {label: i for i, label in enumerate(card.labels)}
        n_choices = len(card.labels)
        firsts, seconds = [], []
        for example in examples:
            if len(example["endings"]) != n_choices:
                raise TaskError(
                    f"task {card.name!r}: an example has {len(example['endings'])} endings, "
                    f"the card's labels name {n_choices}",
                    "give every example the same endings",
                )
            firsts += [example["context"]] * n_choices
            seconds += example["endings"]
        firsts, cut_firsts = bounded(firsts, max_length)  # each (context, ending) pair's two sides
        seconds, cut_seconds = bounded(seconds, max_length)
        encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        items = []
        for i, example in enumerate(examples):
            rows = slice(i * n_choices, (i + 1) * n_choices)
            item = {key: values[rows] for key, values in encoded.items()}
            item["labels"] = label_ids[example["label"]]
            items.append(item)
        cut = cut_rows(tokenizer, [firsts, seconds], encoded, max_length) | cut_firsts | cut_seconds
        return Features(items, truncated={row // n_choices for row in cut})

    def collate(self, tokenizer):
        import torch  # here, not at the top: reading a card (`maskctl tasks`) loads no torch

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

    def prediction(
        self, labels: list[str], example: dict[str, Any], scores: torch.Tensor, truncated: bool = False
    ) -> Choice:
        probs = scores.softmax(-1)
        best = int(probs.argmax())
        return Choice(best, labels[best], float(probs[best]), [float(p) for p in probs], truncated)
