"""Token tagging (POS, NER): one label per word, read at the word's last (or first) wordpiece.

Zhao et al. (and their code) represent a word by its **last** wordpiece; ``word_piece: first``
is the common alternative. Sequences are cut at ``max_length`` tokens including the special
tokens (only the words that can fit are tokenised: ``kinds.base.bounded_words``); words whose
labelled piece falls past the cut are excluded and counted in
``Features.stats["excluded_words"]`` (the paper reports them: e.g. 27 dev / 8 test words on
CoNLL-03). Every other position gets the label -100, which the loss and metrics ignore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maskctl.choices import WORD_PIECES
from maskctl.errors import TaskError
from maskctl.tasks.kinds.base import KINDS, Features, KindBase, RowView, bounded_words, sorted_labels

if TYPE_CHECKING:  # annotations only: a card is read (`maskctl tasks`) without loading torch
    import torch

IGNORE = -100


@dataclass
class Tagging:
    """What a user gets for one sentence: a tag and its probability per word, and the entities."""

    tokens: list[str]
    tags: list[str]
    scores: list[float]
    entities: list[dict[str, Any]] = field(default_factory=list)  # {type, start, end, text} (word spans)
    truncated: bool = False  # words past the bundle's max length got no prediction ("O", score 0)


@KINDS.register("token-tagging")
class TokenTagging(KindBase):
    name = "token-tagging"
    auto_class = "AutoModelForTokenClassification"
    # Byte-level BPE tokenizers (RoBERTa) need this to take pre-split words; others ignore it.
    tokenizer_kwargs: dict[str, Any] = {"add_prefix_space": True}
    default_fields = {"tokens": "tokens", "tags": "tags"}
    input_role, label_role, default_metric = "tokens", "tags", "seqeval-f1"
    input_hint = 'give a text or a list of words ({"tokens": [...]})'
    pipeline_tag = "token-classification"
    labels_sequences = False  # a label per word
    cli_example = "maskctl predict {ref} --text 'A sentence to label'"
    input_fields = {"text": 1}
    result_type = Tagging

    def example_from_row(self, row: RowView) -> dict[str, Any]:
        tokens, tags = row.columns("tokens")[0], row.columns("tags")[0]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise TaskError(f"{row.where}: tokens and tags must be lists of the same length", "write one tag per token")
        return {"tokens": [str(t) for t in tokens], "tags": [row.label(t) for t in tags]}

    def infer_labels(self, values: list[str], first: RowView) -> list[str]:
        return sorted_labels(values)

    @classmethod
    def recognises(cls, columns: list[str], rows: list[dict[str, Any]], label_column: str | None) -> bool:
        """A label column holding lists (a tag per word): the one given, else ``label``, else
        this kind's own ``tags`` when the file has no ``label`` column."""
        own = cls.default_fields[cls.label_role]
        column = label_column or (own if own in columns and "label" not in columns else "label")
        return any(isinstance(row.get(column), list) for row in rows)

    def example_from_input(self, labels: list[str], item: Any) -> dict[str, Any]:
        """A text (split on spaces), a list of words or ``{"tokens"}``; ``ValueError`` else."""
        tokens = item.get("tokens", item.get("text")) if isinstance(item, dict) else item
        tokens = tokens.split() if isinstance(tokens, str) else tokens
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise ValueError('needs "tokens" (a list of words) or "text"')
        return {"tokens": tokens, "tags": [labels[0]] * len(tokens)}

    def encode(
        self, card, tokenizer, examples: list[dict[str, Any]], max_length: int, options: dict[str, Any] | None = None
    ) -> Features:
        piece = (options or {}).get("word_piece", WORD_PIECES[0])
        if piece not in WORD_PIECES:
            raise TaskError(f"--word-piece {piece!r} is not known", "use last or first")
        if not tokenizer.is_fast:
            raise TaskError(
                "token tagging needs a fast tokenizer (for word alignment)", "use a model that ships tokenizer.json"
            )
        label_ids = {label: i for i, label in enumerate(card.labels)}
        words, shortened = [], set()  # only the words that can fit are tokenised (kinds.base.bounded)
        for i, example in enumerate(examples):
            kept, dropped = bounded_words(example["tokens"], max_length)
            words.append(kept)
            if dropped:
                shortened.add(i)
        full = tokenizer(words, is_split_into_words=True, truncation=False)
        cut = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        items, excluded, total, truncated, kept_words = [], 0, 0, set(shortened), []
        for i, example in enumerate(examples):
            if len(full["input_ids"][i]) > max_length:
                truncated.add(i)
            kept_words.append([])
            positions = _label_positions(full.word_ids(i), piece)
            kept_ids = cut.word_ids(i)
            labels = [IGNORE] * len(kept_ids)
            for word, tag in enumerate(example["tags"]):
                total += 1
                pos = positions.get(word)
                if pos is None or pos >= len(kept_ids) or kept_ids[pos] != word:
                    excluded += 1  # cut off by max_length (or a word with no pieces at all)
                    continue
                labels[pos] = label_ids[tag]
                kept_words[-1].append(word)
            item = {key: values[i] for key, values in cut.items()}
            item["labels"] = labels
            items.append(item)
        return Features(items, {"words": total, "excluded_words": excluded}, truncated, kept_words)

    def collate(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, return_tensors="pt")

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list]:
        """Per sentence: a (kept words x labels) logit matrix and the gold ids, in word order."""
        labels = batch["labels"]
        keep = labels != IGNORE
        scores = [row[mask] for row, mask in zip(logits.float().cpu(), keep.cpu())]
        golds = [row[mask].tolist() for row, mask in zip(labels.cpu(), keep.cpu())]
        return scores, golds

    def result(
        self,
        labels: list[str],
        example: dict[str, Any],
        scores: torch.Tensor,
        truncated: bool = False,
        kept_words: list[int] | None = None,
    ) -> Tagging:
        """``kept_words`` names the word each score row belongs to (words that max_length cut,
        or that have no pieces, have no row); other words are "O", score 0."""
        from seqeval.metrics.sequence_labeling import get_entities

        tokens = example["tokens"]
        words = kept_words if kept_words is not None else list(range(len(scores)))
        tags, confidence = ["O"] * len(tokens), [0.0] * len(tokens)
        best = scores.softmax(-1).max(-1)
        for word, index, value in zip(words, best.indices.tolist(), best.values.tolist()):
            tags[word], confidence[word] = labels[index], value
        entities = [
            {"type": kind, "start": start, "end": end + 1, "text": " ".join(tokens[start : end + 1])}
            for kind, start, end in get_entities(tags)
        ]
        return Tagging(tokens=tokens, tags=tags, scores=confidence, entities=entities, truncated=truncated)


def _label_positions(word_ids: list[int | None], piece: str) -> dict[int, int]:
    """Token index of each word's last (or first) piece."""
    positions: dict[int, int] = {}
    for index, word in enumerate(word_ids):
        if word is None:
            continue
        if piece == "last" or word not in positions:
            positions[word] = index
    return positions
