"""What serving returns, per task kind, and how a user's input becomes a canonical example.

Inputs: a text (or a ``(text, text_pair)`` pair, or ``{"text", "text_pair"}``) for
classification; a text or a list of words (or ``{"tokens"}``) for tagging;
``{"context", "endings"}`` for multiple choice. A request that does not fit gets a
``RequestError`` in its place; the other requests of the batch are still answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from maskctl.tasks.task import Task


@dataclass
class Classification:
    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool = False  # the text was longer than the bundle's max length and was cut


@dataclass
class Tagging:
    tokens: list[str]
    tags: list[str]
    scores: list[float]
    entities: list[dict[str, Any]] = field(default_factory=list)  # {type, start, end, text} (word spans)
    truncated: bool = False  # words past the bundle's max length got no prediction ("O", score 0)


@dataclass
class Choice:
    choice: int
    label: str
    score: float
    probabilities: list[float]
    truncated: bool = False  # a context + ending was longer than the bundle's max length and was cut


@dataclass
class RequestError:
    """One request of a batch that could not be answered: its index, what is wrong, the fix."""

    index: int
    task: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        return f"request {self.index}: {self.message} — {self.fix}"


def to_example(task: Task, item: Any) -> dict[str, Any]:
    """A canonical example (with a placeholder gold label) from one user input."""
    kind, labels = task.card.kind, task.labels
    if kind == "sequence-classification":
        if isinstance(item, dict):
            text, pair = item.get("text"), item.get("text_pair")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            text, pair = item
        else:
            text, pair = item, None
        if not isinstance(text, str):
            raise ValueError('needs "text" (and optionally "text_pair")')
        return {"text": text, "text_pair": pair, "label": labels[0]}
    if kind == "token-tagging":
        tokens = item.get("tokens", item.get("text")) if isinstance(item, dict) else item
        tokens = tokens.split() if isinstance(tokens, str) else tokens
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise ValueError('needs "tokens" (a list of words) or "text"')
        return {"tokens": tokens, "tags": [labels[0]] * len(tokens)}
    if not isinstance(item, dict) or not isinstance(item.get("endings"), list) or "context" not in item:
        raise ValueError('needs "context" and "endings" (a list)')
    if len(item["endings"]) != len(labels):
        raise ValueError(f"needs {len(labels)} endings")
    return {"context": str(item["context"]), "endings": [str(e) for e in item["endings"]], "label": labels[0]}


def make_result(task: Task, example: dict[str, Any], scores: torch.Tensor, truncated: bool = False,
                kept_words: list[int] | None = None):
    """The prediction of one example from its score tensor (``Kind.select``). ``kept_words``
    (tagging) names the word each score row belongs to; other words are tagged "O", score 0."""
    probs = scores.softmax(-1)
    labels = task.labels
    if task.card.kind == "sequence-classification":
        best = int(probs.argmax())
        return Classification(labels[best], float(probs[best]), {lab: float(p) for lab, p in zip(labels, probs)},
                              truncated)
    if task.card.kind == "multiple-choice":
        best = int(probs.argmax())
        return Choice(best, labels[best], float(probs[best]), [float(p) for p in probs], truncated)
    from seqeval.metrics.sequence_labeling import get_entities

    tokens = example["tokens"]
    words = kept_words if kept_words is not None else list(range(len(scores)))
    tags, confidence = ["O"] * len(tokens), [0.0] * len(tokens)
    best = probs.max(-1)
    for word, index, value in zip(words, best.indices.tolist(), best.values.tolist()):
        tags[word], confidence[word] = labels[index], value
    entities = [{"type": kind, "start": start, "end": end + 1, "text": " ".join(tokens[start:end + 1])}
                for kind, start, end in get_entities(tags)]
    return Tagging(tokens=tokens, tags=tags, scores=confidence, entities=entities, truncated=truncated)
