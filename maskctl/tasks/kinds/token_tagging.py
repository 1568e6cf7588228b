"""Token tagging (POS, NER): one label per word, read at the word's last (or first) wordpiece.

Zhao et al. (and their code) represent a word by its **last** wordpiece; ``word_piece: first``
is the common alternative. Sequences are cut at ``max_length`` tokens including the special
tokens; words whose labelled piece falls past the cut are excluded and counted in
``Features.stats["excluded_words"]`` (the paper reports them: e.g. 27 dev / 8 test words on
CoNLL-03). Every other position gets the label -100, which the loss and metrics ignore.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorForTokenClassification

from maskctl.errors import TaskError
from maskctl.tasks.kinds.base import Features

IGNORE = -100
WORD_PIECES = ("last", "first")


class TokenTagging:
    name = "token-tagging"
    auto_class = "AutoModelForTokenClassification"
    # Byte-level BPE tokenizers (RoBERTa) need this to take pre-split words; others ignore it.
    tokenizer_kwargs: dict[str, Any] = {"add_prefix_space": True}

    def encode(self, card, tokenizer, examples: list[dict[str, Any]], max_length: int,
               options: dict[str, Any] | None = None) -> Features:
        piece = (options or {}).get("word_piece", "last")
        if piece not in WORD_PIECES:
            raise TaskError(f"--word-piece {piece!r} is not known", "use last or first")
        if not tokenizer.is_fast:
            raise TaskError("token tagging needs a fast tokenizer (for word alignment)",
                            "use a model that ships tokenizer.json")
        label_ids = {label: i for i, label in enumerate(card.labels)}
        words = [ex["tokens"] for ex in examples]
        full = tokenizer(words, is_split_into_words=True, truncation=False)
        cut = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        items, excluded, total, truncated, kept_words = [], 0, 0, set(), []
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
        return DataCollatorForTokenClassification(tokenizer, return_tensors="pt")

    def select(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list]:
        """Per sentence: a (kept words x labels) logit matrix and the gold ids, in word order."""
        labels = batch["labels"]
        keep = labels != IGNORE
        scores = [row[mask] for row, mask in zip(logits.float().cpu(), keep.cpu())]
        golds = [row[mask].tolist() for row, mask in zip(labels.cpu(), keep.cpu())]
        return scores, golds


def _label_positions(word_ids: list[int | None], piece: str) -> dict[int, int]:
    """Token index of each word's last (or first) piece."""
    positions: dict[int, int] = {}
    for index, word in enumerate(word_ids):
        if word is None:
            continue
        if piece == "last" or word not in positions:
            positions[word] = index
    return positions
