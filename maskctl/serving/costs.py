"""What one input costs a batch, in tokens: the budget ``serve --max-batch-tokens`` closes on.

A batch is padded to its longest sequence, so its compute is rows x longest row; the batcher
adds each input's rows x length (capped at the task's max length) and closes the batch before
the budget would pass. The count runs on a private copy of each fast tokenizer: a tokenizer
shared with the compute thread fails with "Already borrowed" when one thread counts while the
other sets its truncation. Without a fast tokenizer, words x 1.3 is the estimate.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from maskctl.tasks.kinds.base import bounded

SPECIALS = 3  # [CLS] a [SEP] b [SEP]: the most any kind adds to a row


class TokenCounter:
    """Tokens of each ``(task, example)`` as the batcher budgets them."""

    def __init__(self, model) -> None:
        self.model = model
        self._copies: dict[int, Any] = {}
        self._lock = threading.Lock()

    def costs(self, requests: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """One cost per ``(task, canonical example)`` (``results.example_from_input``), in order."""
        pending: dict[int, list[str]] = {}  # texts to count, by tokenizer copy
        plans = []  # per request: (max length, [(copy, first text, texts) per row])
        for name, example in requests:
            try:
                tokenizer, max_length = self.model.encoding(name)
            except KeyError:  # unloaded meanwhile: it will be answered 404 at no cost
                plans.append((0, []))
                continue
            key = self._copy(tokenizer)
            texts = pending.setdefault(key, [])
            rows = []
            for row in _rows(example):
                rows.append((key, len(texts), len(row)))
                texts += bounded(row, max_length)[0]  # what the kind will tokenise, no more
            plans.append((max_length, rows))
        counts = {key: self._count(key, texts) for key, texts in pending.items()}
        return [sum(min(limit, SPECIALS + sum(counts[key][first:first + n])) for key, first, n in rows)
                for limit, rows in plans]

    def _copy(self, tokenizer) -> int:
        key = id(tokenizer)
        if key not in self._copies:
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is not None:
                from tokenizers import Tokenizer

                backend = Tokenizer.from_str(backend.to_str())
                backend.no_truncation()
                backend.no_padding()
            self._copies[key] = backend
        return key

    def _count(self, key: int, texts: list[str]) -> list[int]:
        backend = self._copies[key]
        if backend is None:  # no fast tokenizer: the estimate
            return [int(len(t.split()) * 1.3) + 1 for t in texts]
        with self._lock:  # one thread at a time on the private copy
            return [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False)]


def _rows(example: dict[str, Any]) -> list[list[str]]:
    """The texts of each row the example becomes (one per ending for multiple choice)."""
    if "endings" in example:
        return [[str(example.get("context", "")), str(ending)] for ending in example["endings"]]
    if "tokens" in example:
        return [[" ".join(map(str, example["tokens"]))]]
    return [[str(example.get("text", ""))] + ([str(example["text_pair"])] if example.get("text_pair") else [])]
