"""``TrainArgs``: every knob of ``maskctl train``, and how task cards fill the ones left open.

A field left at ``None`` takes the task card's ``defaults:`` value (a plain value, or one per
method: ``lr: {mask: 3e-3, finetune: 1e-4}``), else the fallback in ``FALLBACKS``. Finetuning's
fallbacks are the Hugging Face ``Trainer``'s own defaults (AdamW, no weight decay, no warm-up,
linear decay, gradient clipping at norm 1.0), so ``--method finetune`` is the standard recipe
and not a weaker baseline; masking's are the paper's (Adam on the scores, lr 1e-3, 5 % initial
sparsity, classifier masked). Unknown card keys are refused with a suggestion.

Why at the package root and not in ``maskctl.training``: the settings are read by more than the
trainer. A bundle's model card rebuilds the ``maskctl train`` command that made it from these
fields and fallbacks, and ``maskctl.bundle`` must never import the training package (the
optimiser, the loop; tests/test_layering.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from maskctl.choices import DEVICE_HELP, DEVICE_METAVAR, EVAL_BATCH_SIZE, MAX_LENGTH, WORD_PIECES
from maskctl.errors import MaskctlError
from maskctl.masking.config import ALSO_TRAIN, DEFAULT_INIT_SPARSITY, DEFAULT_TUNED_LR, MaskConfig
from maskctl.registry import Registry
from maskctl.schema import bounds_of, check_fields, default_of, did_you_mean, flag, same_as, setting
from maskctl.tasks.kinds import KINDS

if TYPE_CHECKING:  # annotations only: the methods import torch
    from maskctl.training.methods import TrainingMethod

# --method's choices: a ``TrainingMethod`` class each (a plugin's through ``maskctl.methods``);
# declared here as placeholders, so the options and a bundle's model card never import torch.
METHODS: Registry[type[TrainingMethod]] = Registry("training method", group="maskctl.methods")
METHODS.register("mask", "maskctl.training.methods:MaskMethod")
METHODS.register("finetune", "maskctl.training.methods:FinetuneMethod")
KEEP_RULES = ("best", "last")
TRACKERS = ("none", "tensorboard", "wandb")  # --report-to, through accelerate's trackers

# What a field left at None becomes when the task card says nothing: a value, or one per method.
FALLBACKS: dict[str, Any] = {
    "epochs": 3,
    "lr": {"mask": 1e-3, "finetune": 5e-5},
    "weight_decay": 0.0,
    "warmup_ratio": 0.0,
    "max_grad_norm": {"mask": 0.0, "finetune": 1.0},
    "head": default_of(MaskConfig, "head"),
    "init_sparsity": DEFAULT_INIT_SPARSITY,
    "flip_penalty": 0.0,
    "max_flips": None,
    "also_train": ALSO_TRAIN[0],
    "tuned_lr": DEFAULT_TUNED_LR,
    "word_piece": WORD_PIECES[0],
}
# The keys a card's ``defaults:`` may set: the fields above, and the masked blocks (None there
# means "all but the lowest two", so a card value replaces it only while it is None).
CARD_KEYS = (*FALLBACKS, "mask_blocks")
CARD_TYPES = {
    "epochs": int,
    "lr": float,
    "weight_decay": float,
    "warmup_ratio": float,
    "max_grad_norm": float,
    "init_sparsity": float,
    "flip_penalty": float,
    "tuned_lr": float,
    "max_flips": lambda v: share(v, "defaults.max_flips"),
}
DEFAULT_LR = FALLBACKS["lr"]


def share(value: Any, option: str = "--max-flips") -> float | None:
    """``0.015``, ``"0.015"`` or ``"1.5%"`` as the fraction 0.015 (None stays None)."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else float(value)
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise MaskctlError(
            f"{option} {value!r} is not a share of the mask bits",
            "give a fraction such as 0.015 or a percentage such as 1.5%",
        ) from None


# The panels of `maskctl train --help`, in the order a newcomer looks for an option.
TASK, OPT, MASK, EVAL = "Data: task, model, encoding", "Optimisation", "Mask", "Output and evaluation"
RUN = "Devices, distributed runs, checkpoints"
DATA = "Your own data files (instead of --task)"
DEFAULT_TASK = "bbc-news"
DATA_FIELDS = ("validation_file", "test_file", "text_column", "label_column", "kind", "validation_split", "task_name")


def _fallback(name: str) -> str:
    """How a help text names a field's fallback, read from ``FALLBACKS`` (so it is stated once)."""
    value = FALLBACKS[name]
    shown = (
        ", ".join(f"{v:g} {m}" for m, v in value.items())
        if isinstance(value, dict)
        else (f"{value:g}" if isinstance(value, float) else str(value))
    )
    return f"(default: the card's, else {shown})"


@dataclass
class TrainArgs:
    """Every knob of ``maskctl train``, declared once: the CLI's options are generated from these
    fields (``maskctl/cli/options.py``), recipes and ``key=value`` overrides are checked against
    them; stored in the bundle as the run's record."""

    model: str | None = setting(None, "Hub id or local folder (default: the packaged MiniLM).", panel=TASK)
    task: str | None = setting(DEFAULT_TASK, "Registered task name or path to a YAML task card.", panel=TASK)
    output: str | None = setting(
        None,
        "Output *.bundle (mask) or folder (finetune); default masks/<task>-<model>.bundle or finetuned/<task>-<model>.",
        panel=EVAL,
    )
    method: str = setting("mask", "mask (learn a binary mask) or finetune (all weights).", choices=METHODS, panel=TASK)
    epochs: int | None = setting(None, f"Epochs {_fallback('epochs')}.", min=1, panel=OPT)
    max_steps: int | None = setting(
        None, "Stop after this many optimizer steps (0: score the initial mask).", min=0, panel=OPT
    )
    batch_size: int = setting(32, "Training batch size.", min=1, panel=OPT)
    eval_batch_size: int = setting(EVAL_BATCH_SIZE, "Evaluation batch size.", min=1, panel=EVAL)
    lr: float | None = setting(None, f"Learning rate {_fallback('lr')}.", above=0, panel=OPT)
    weight_decay: float | None = setting(
        None, f"AdamW weight decay, never on biases/LayerNorm {_fallback('weight_decay')}.", min=0, panel=OPT
    )
    warmup_ratio: float | None = setting(
        None, f"Finetuning: share of steps with linear warm-up {_fallback('warmup_ratio')}.", min=0, below=1, panel=OPT
    )
    max_grad_norm: float | None = setting(
        None, f"Clip the gradient norm; 0 = never {_fallback('max_grad_norm')}.", min=0, panel=OPT
    )
    max_length: int = setting(MAX_LENGTH, "Maximum tokens per example.", min=1, panel=TASK)
    init_sparsity: float | None = setting(
        None,
        f"Fraction of mask bits that start at zero {_fallback('init_sparsity')}.",
        **bounds_of(MaskConfig, "init_sparsity"),
        panel=MASK,
    )
    threshold: float = same_as(MaskConfig, "threshold", panel=MASK)
    flip_penalty: float | None = setting(
        None,
        "After each step, pull every score that crossed the threshold back "
        "towards its initial side by lr x this: a flipped bit must earn its place "
        f"(smaller bundle, less memory served; 0 = the paper) {_fallback('flip_penalty')}.",
        min=0,
        panel=MASK,
    )
    max_flips: str | None = setting(
        None,
        "At most this share of the mask bits may differ from the initial mask, "
        "e.g. 1.5% or 0.015: after every step only the crossings with the largest "
        "accumulated gradient push flip, the rest keep their initial bit (an exact "
        "bound on the bundle's flips; default: the card's, else none).",
        min=0,
        max=1,
        panel=MASK,
    )
    also_train: str | None = setting(
        None,
        "Also train, inside the masked blocks, the masked linears' biases and/or "
        "the LayerNorms (BitFit-style; stored as float16 deltas, a few tens of kB) "
        f"{_fallback('also_train')}.",
        choices=ALSO_TRAIN,
        panel=MASK,
    )
    tuned_lr: float | None = setting(
        None, f"Adam learning rate of the --also-train tensors {_fallback('tuned_lr')}.", above=0, panel=MASK
    )
    mask_blocks: str | None = setting(
        None, "Blocks to mask: 2-11, all, top:K, bottom:K (default: all but the lowest two).", panel=MASK
    )
    head: str | None = setting(
        None, f"Classifier: mask (paper) or train {_fallback('head')}.", **bounds_of(MaskConfig, "head"), panel=MASK
    )
    seed: int = setting(0, "Random seed (data order, classifier init, mask init).", panel=OPT)
    data_dir: str | None = setting(None, "Folder with the task's data files.", panel=TASK)
    train_file: str | None = setting(
        None, "Train on this csv, tsv, json, jsonl or parquet file (no task card needed).", panel=DATA
    )
    validation_file: str | None = setting(
        None,
        "Dev file for evaluation and keeping the best (default: carved from the train file, see --validation-split).",
        panel=DATA,
    )
    test_file: str | None = setting(
        None, "Test file, stored with the task for `maskctl eval --split test`.", panel=DATA
    )
    text_column: list[str] | None = setting(
        None,
        "Column with the text (twice for a sentence pair; the words for tagging, the context for multiple choice).",
        panel=DATA,
    )
    label_column: str | None = setting(
        None,
        "Column with the label (default: label; tags for tagging); the "
        "labels are its distinct values in the train file.",
        panel=DATA,
    )
    kind: str | None = setting(
        None,
        "Task kind (default: inferred: a column of lists is tagging, an endings column multiple choice).",
        choices=KINDS,
        panel=DATA,
    )
    validation_split: float | None = setting(
        None,
        "Share of the train file held out as dev when there is no --validation-file (default 0.1).",
        above=0,
        below=1,
        panel=DATA,
    )
    task_name: str | None = setting(
        None, "Name of the task built from the files (default: the train file's name).", panel=DATA
    )
    device: str = setting("auto", DEVICE_HELP, panel=RUN, metavar=DEVICE_METAVAR)
    precision: str = setting("no", "Mixed precision on CUDA.", choices=("no", "bf16", "fp16"), panel=RUN)
    max_train_samples: int | None = setting(None, "Use only the first N training examples.", min=1, panel=TASK)
    word_piece: str | None = setting(
        None,
        f"Token tagging: read a word at its last (paper) or first piece {_fallback('word_piece')}.",
        choices=WORD_PIECES,
        panel=TASK,
    )
    grad_accum: int = setting(1, "Batches per optimizer step (gradient accumulation).", min=1, panel=OPT)
    eval_every: int | None = setting(
        None, "Evaluate on dev every N optimizer steps (default: each epoch).", min=1, panel=EVAL
    )
    keep: str = setting(
        "best", "Output the best dev evaluation (best) or the final state (last).", choices=KEEP_RULES, panel=EVAL
    )
    early_stopping: int | None = setting(
        None, "Stop after N evaluations without a new best dev score.", min=1, panel=EVAL
    )
    log_every: int = setting(
        50,
        "For non-terminal output (logs, CI) and trackers: one line / record of the mean "
        "loss, lr and speed every N optimizer steps.",
        min=1,
        panel=EVAL,
    )
    report_to: str = setting(
        "none",
        "Also log loss, lr and dev metrics to a tracker (files in <output>.runs/; needs its package).",
        choices=TRACKERS,
        panel=EVAL,
    )
    checkpoint_every: int | None = setting(None, "Write a checkpoint every N optimizer steps.", min=1, panel=RUN)
    checkpoint_dir: str | None = setting(None, "Checkpoint folder (default: <output>.ckpt).", panel=RUN)
    resume: str | None = setting(None, "Continue a run from its checkpoint folder.", panel=RUN)
    overwrite: bool = setting(False, "Replace an existing output.", panel=EVAL)

    @property
    def kind_options(self) -> dict[str, Any]:
        return {"word_piece": self.word_piece}

    def __post_init__(self) -> None:
        """Bounds and choices from the fields, then the rules between fields, before any loading."""
        if isinstance(self.text_column, str):  # a recipe or key=value override gives one name
            self.text_column = [self.text_column]
        self.max_flips = share(self.max_flips)
        check_fields(self)
        self._check_data_files()
        if self.mask_blocks is not None:
            from maskctl.masking.targets import parse_blocks

            parse_blocks(self.mask_blocks, None)  # the syntax now; the model's block count when it is loaded
        if self.method != "mask" and self.flip_penalty:
            raise MaskctlError("--flip-penalty applies to masking", "drop it, or use --method mask")
        if self.method != "mask" and self.max_flips is not None:
            raise MaskctlError("--max-flips applies to masking", "drop it, or use --method mask")
        if self.method != "mask" and self.also_train not in (None, ALSO_TRAIN[0]):
            raise MaskctlError(
                "--also-train applies to masking (finetuning trains every parameter)", "drop it, or use --method mask"
            )
        if self.early_stopping is not None and self.keep != "best":
            raise MaskctlError("--early-stopping needs --keep best", "drop --early-stopping or keep the best")

    def _check_data_files(self) -> None:
        given = [name for name in DATA_FIELDS if getattr(self, name) is not None]
        if not self.train_file:
            if given:
                raise MaskctlError(f"{flag(given[0])} needs --train-file", "add --train-file FILE, or drop it")
            return
        if self.task not in (None, DEFAULT_TASK):
            raise MaskctlError("give --task or --train-file, not both", "a task built from files needs no --task")
        if self.validation_file and self.validation_split is not None:
            raise MaskctlError(
                "give --validation-file or --validation-split, not both",
                "--validation-split carves dev from the train file when there is no dev file",
            )
        self.task = None  # the task is the one the files describe (the bundle stores its card)

    def load_task(self):
        """The task to train: a registered name or card (``--task``), or built from data files."""
        from maskctl.tasks.from_files import DataFiles, card_from_files
        from maskctl.tasks.task import Task, get_task

        if not self.train_file:
            return get_task(self.task or DEFAULT_TASK)
        return Task.from_card(
            card_from_files(
                DataFiles(
                    train=self.train_file,
                    validation=self.validation_file,
                    test=self.test_file,
                    text_columns=tuple(self.text_column or ()),
                    label_column=self.label_column,
                    kind=self.kind,
                    validation_split=self.validation_split,
                    name=self.task_name,
                    seed=self.seed,
                )
            )
        )

    def record(self) -> dict[str, Any]:
        """What a bundle stores about the run: everything that shapes the result, nothing
        operational (output path, checkpointing, logging), so a resumed run writes the same bytes
        and a sweep point trained with other logging is still the same point."""
        skip = {"output", "overwrite", "checkpoint_every", "checkpoint_dir", "resume", "log_every", "report_to"}
        if self.max_flips is None:  # a run without a budget records exactly what it did before budgets existed
            skip.add("max_flips")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    def with_task_defaults(self, defaults: dict[str, Any]) -> TrainArgs:
        """Fill every field left at None from a task card's ``defaults:``, then ``FALLBACKS``."""
        check_card_defaults(defaults)
        filled = {}
        for name in CARD_KEYS:
            if getattr(self, name) is not None:
                continue
            value = _for_method(defaults.get(name), self.method)
            value = value if value is not None else _for_method(FALLBACKS.get(name), self.method)
            try:  # YAML 1.1 reads 1e-3 (no dot) as a string
                filled[name] = CARD_TYPES.get(name, str)(value) if value is not None else None
            except (TypeError, ValueError):
                raise MaskctlError(
                    f"the task card: defaults.{name} is not a number: {value!r}", "fix the card, e.g. lr: 1.0e-3"
                ) from None
        return dataclasses.replace(self, **filled)


def _for_method(value: Any, method: str) -> Any:
    return value.get(method) if isinstance(value, dict) else value


def check_card_defaults(defaults: dict[str, Any], where: str = "the task card") -> None:
    """Refuse card ``defaults:`` keys that no setting has (e.g. ``epoch: 3``), with a suggestion."""
    for key, value in defaults.items():
        if key not in CARD_KEYS:
            raise MaskctlError(
                f"{where}: unknown key {key!r} under defaults:",
                did_you_mean(key, CARD_KEYS, f"use {', '.join(CARD_KEYS)}"),
            )
        if isinstance(value, dict) and set(value) - set(METHODS):
            raise MaskctlError(
                f"{where}: defaults.{key} has keys {sorted(value)}",
                "give one value, or one per method: {mask: ..., finetune: ...}",
            )
