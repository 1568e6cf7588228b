"""Names the CLI lists as an option's choices, and the defaults that several settings share,
kept where they can be imported without torch: ``maskctl --help``, ``--version`` and every Tab
of shell completion build every command's options, so a constant imported from a module that
loads a model costs seconds each time."""

from __future__ import annotations

VOTE_RULES = ("label", "logit", "prob")  # maskctl ensemble --by (and "best")
EXPORT_FORMATS = ("hf",)  # maskctl export --format
# data files by extension (maskctl predict --input, eval --file, train --train-file)
DATA_FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
WORD_PIECES = ("last", "first")  # token tagging reads a word at its last (the paper's) or first piece

# How a run encodes its data: TrainArgs' defaults, and what a bundle that predates recording them
# is read with (bundle.meta.TrainingRecord) and a served task falls back to.
MAX_LENGTH = 128
EVAL_BATCH_SIZE = 64
DEVICE_HELP = "auto (cuda when there is one), cpu, cuda or cuda:N."
DEVICE_METAVAR = "auto|cpu|cuda[:N]"
BUNDLE_SUFFIX = ".bundle"
# maskctl analyze sparsity: the paper's grid of initial sparsities in percent (§5.1)
SPARSITY_PERCENTS = (1, 3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# maskctl train --ray-address and maskctl serve --ray-address: which Ray cluster runs the work
RAY_ADDRESS_HELP = (
    "Ray cluster to run on: auto (the one this node belongs to, as after `ray start`), HOST:PORT, "
    "or ray://HOST:10001 (default: $RAY_ADDRESS, else a Ray instance started here for this command)."
)
