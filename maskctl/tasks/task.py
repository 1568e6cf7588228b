"""``Task``: a card joined with its kind's code; what the trainer and evaluator use."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskctl.tasks.card import TaskCard, canonical_split
from maskctl.tasks.from_files import check_columns
from maskctl.tasks.kinds import Features, Kind, get_kind, named_columns
from maskctl.tasks.readers import data_spec, read_split
from maskctl.tasks.readers.datafiles import load_file
from maskctl.tasks.registry import get_card

ENCODE_CHUNK = 2048  # examples per tokenizer call when progress is reported


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

    def features(
        self,
        split: str,
        tokenizer,
        max_length: int,
        data_dir: str | Path | None = None,
        limit: int | None = None,
        options: dict[str, Any] | None = None,
        stage: Callable[..., AbstractContextManager[Callable[[int], None] | None]] | None = None,
    ) -> Features:
        """Read and encode one split; ``options`` are kind options (e.g. ``word_piece``).
        ``stage(name, total)`` wraps the reading and the tokenising and yields a progress
        function (the trainer passes ``training.callbacks.phase`` bound to its callback)."""
        with (stage or _silent)(f"reading {split}"):
            examples = self.examples(split, data_dir)
        if limit is not None:
            examples = examples[:limit]
        with (stage or _silent)(f"tokenising {split}", len(examples)) as advance:
            return self.encode(examples, tokenizer, max_length, options, progress=advance)

    def encode(
        self,
        examples: list[dict[str, Any]],
        tokenizer,
        max_length: int,
        options: dict[str, Any] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Features:
        """The kind's encoding of ``examples``; with ``progress``, in chunks of ``ENCODE_CHUNK``
        examples, calling ``progress(n)`` after each, so a long split shows how far it got.
        Examples encode independently, so the chunks join into the very features one call
        gives (``stats`` are counts and add up)."""
        if progress is None or not examples:
            return self.kind.encode(self.card, tokenizer, examples, max_length, options or {})
        joined = Features([])
        for start in range(0, len(examples), ENCODE_CHUNK):
            part = self.kind.encode(
                self.card, tokenizer, examples[start : start + ENCODE_CHUNK], max_length, options or {}
            )
            joined.items += part.items
            joined.truncated |= {start + i for i in part.truncated}
            joined.kept_words += part.kept_words
            for key, value in part.stats.items():
                joined.stats[key] = joined.stats.get(key, 0) + value
            progress(len(part))
        return joined

    def on_file(
        self, path: str | Path, split: str, text_columns: tuple[str, ...] = (), label_column: str | None = None
    ) -> Task:
        """This task with ``split`` read from one data file (csv, tsv, json, jsonl, parquet)
        under the card's column names and label mapping (``maskctl eval --file``), or under
        ``text_columns`` / ``label_column`` where the file names them otherwise."""
        spec = data_spec(self.card, None)
        keep: dict[str, Any] = {k: spec[k] for k in ("fields", "label_map", "join", "ending_prefix") if k in spec}
        if text_columns or label_column:
            keep["fields"] = named_columns(
                self.kind, {**self.card.fields, **keep.get("fields", {})}, text_columns, label_column
            )
        check_columns(load_file(path), {**self.card.fields, **keep.get("fields", {})}, self.kind)
        source = {
            "reader": "file",
            "origin": "scored file",
            "files": {canonical_split(split): str(Path(path).resolve())},
            **keep,
        }
        return Task.from_card(dataclasses.replace(self.card, source=source, files=None, base_dir=None))


@contextlib.contextmanager
def _silent(name: str, total: int | None = None) -> Iterator[None]:
    """No stage shown: encode in one call."""
    yield None


def get_task(name_or_path: str) -> Task:
    """A registered task name or a YAML card path -> ``Task``."""
    return Task.from_card(get_card(name_or_path))
