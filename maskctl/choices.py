"""Names the CLI lists as an option's choices, kept where it can import them without torch:
``maskctl --help``, ``--version`` and every Tab of shell completion build every command's
options, so a constant imported from a module that loads a model costs seconds each time."""

from __future__ import annotations

VOTE_RULES = ("label", "logit", "prob")  # maskctl ensemble --by (and "best")
EXPORT_FORMATS = ("hf",)  # maskctl export --format
# data files by extension (maskctl predict --input, eval --file, train --train-file)
DATA_FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
TASK_KINDS = ("sequence-classification", "token-tagging", "multiple-choice")  # a card's kind (tasks/kinds/)
