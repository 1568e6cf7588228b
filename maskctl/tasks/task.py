"""``Task``: a card joined with its kind's code; what the trainer and evaluator use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskctl.tasks import metrics
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds import Features, Kind, get_kind
from maskctl.tasks.readers import read_split
from maskctl.tasks.registry import get_card


@dataclass
class Task:
    card: TaskCard
    kind: Kind

    @classmethod
    def from_card(cls, card: TaskCard) -> Task:
        return cls(card=card, kind=get_kind(card.kind))

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def labels(self) -> list[str]:
        return self.card.labels

    def examples(self, split: str, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
        return read_split(self.card, split, data_dir)

    def features(self, split: str, tokenizer, max_length: int, data_dir: str | Path | None = None,
                 limit: int | None = None, options: dict[str, Any] | None = None) -> Features:
        """Read and encode one split; ``options`` are kind options (e.g. ``word_piece``)."""
        examples = self.examples(split, data_dir)
        if limit is not None:
            examples = examples[:limit]
        return self.kind.encode(self.card, tokenizer, examples, max_length, options or {})

    def metric(self, golds: list, preds: list) -> dict[str, float]:
        return metrics.compute(self.card.metric, golds, preds, self.card.labels)


def get_task(name_or_path: str) -> Task:
    """A registered task name or a YAML card path -> ``Task``."""
    return Task.from_card(get_card(name_or_path))
