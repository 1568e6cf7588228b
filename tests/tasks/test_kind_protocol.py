"""Everything about a task kind lives on its class: a new kind is one registered class. Every registered kind implements the whole protocol, and a kind added to the registry is
usable by cards, data rows and serving without touching them."""

from __future__ import annotations

import dataclasses

import torch

from maskctl.serving.results import example_from_input
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds import KINDS, Kind
from maskctl.tasks.kinds.base import RowView
from maskctl.tasks.kinds.sequence_classification import SequenceClassification
from maskctl.tasks.readers.rows import example_from_row
from maskctl.tasks.task import Task

MEMBERS = [name for name in Kind.__dict__ if not name.startswith("_")] + list(Kind.__annotations__)


def test_every_registered_kind_implements_the_protocol():
    assert set(KINDS) >= {"sequence-classification", "token-tagging", "multiple-choice"}
    for name, cls in KINDS.items():
        missing = [m for m in MEMBERS if not hasattr(cls, m)]
        assert not missing, (name, missing)
        assert cls.name == name and cls.default_fields and cls.input_hint


def test_a_new_kind_is_one_class(monkeypatch):
    @dataclasses.dataclass
    class Score:
        value: float

    class Regression(SequenceClassification):  # reuses the encoder side, changes rows, inputs and results
        name = "regression"
        default_fields = {"text": "sentence", "label": "label"}
        input_hint = "give a sentence"

        def example_from_row(self, row: RowView):
            return {"text": str(row.columns("text")[0]), "text_pair": None, "label": row.label(row.columns("label")[0])}

        def example_from_input(self, labels, item):
            if not isinstance(item, str):
                raise ValueError("needs a sentence")
            return {"text": item, "text_pair": None, "label": labels[0]}

        def result(self, labels, example, scores, truncated=False, kept_words=None):
            return Score(float(scores.softmax(-1)[1]))

    monkeypatch.setattr(KINDS, "_objects", dict(KINDS._objects))  # the registration ends with the test
    KINDS.register("regression")(Regression)
    card = TaskCard(name="r", kind="regression", labels=["low", "high"], source={"reader": "jsonl"})
    assert example_from_row(card, {}, {"sentence": "fine", "label": "high"}, "f:1")["label"] == "high"
    task = Task.from_card(card)
    assert example_from_input(task, "fine")["text"] == "fine"
    assert task.kind.result(task.labels, {}, torch.tensor([0.0, 0.0])) == Score(0.5)
