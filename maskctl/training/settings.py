"""``TrainArgs``: every knob of ``maskctl train``, and how task cards fill the ones left open.

A field left at ``None`` takes the task card's ``defaults:`` value (a plain value, or one per
method: ``lr: {mask: 3e-3, finetune: 1e-4}``), else the fallback in ``FALLBACKS``. Finetuning's
fallbacks are the Hugging Face ``Trainer``'s own defaults (AdamW, no weight decay, no warm-up,
linear decay, gradient clipping at norm 1.0), so ``--method finetune`` is the standard recipe
and not a weaker baseline; masking's are the paper's (Adam on the scores, lr 1e-3, 5 % initial
sparsity, classifier masked). Unknown card keys are refused with a suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from maskctl.errors import MaskctlError
from maskctl.masking.model import HEAD_MODES

METHODS = ("mask", "finetune")
KEEP_RULES = ("best", "last")

# What a field left at None becomes when the task card says nothing: a value, or one per method.
FALLBACKS: dict[str, Any] = {
    "epochs": 3,
    "lr": {"mask": 1e-3, "finetune": 5e-5},
    "weight_decay": 0.0,
    "warmup_ratio": 0.0,
    "max_grad_norm": {"mask": 0.0, "finetune": 1.0},
    "head": "mask",
    "init_sparsity": 0.05,
}
# The keys a card's ``defaults:`` may set: the fields above, and the masked blocks (None there
# means "all but the lowest two", so a card value replaces it only while it is None).
CARD_KEYS = (*FALLBACKS, "mask_blocks")
CARD_TYPES = {"epochs": int, "lr": float, "weight_decay": float, "warmup_ratio": float, "max_grad_norm": float,
              "init_sparsity": float}
DEFAULT_LR = FALLBACKS["lr"]


@dataclass
class TrainArgs:
    """Every knob of ``maskctl train``; stored in the bundle as the run's record."""

    model: str | None = None
    task: str = "bbc-news"
    output: str | None = None
    method: str = "mask"
    epochs: int | None = None  # None: the task card's default, else 3
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float | None = None  # None: the card's default for the method, else FALLBACKS
    weight_decay: float | None = None  # decoupled (AdamW); never on biases or LayerNorm weights
    warmup_ratio: float | None = None  # share of the steps with linear warm-up (finetuning)
    max_grad_norm: float | None = None  # clip the gradient's global norm; 0 = never
    max_length: int = 128
    init_sparsity: float | None = None
    threshold: float = 0.01
    mask_blocks: str | None = None
    head: str | None = None  # "mask" (paper) or "train"
    seed: int = 0
    data_dir: str | None = None
    device: str = "auto"
    precision: str = "no"  # "no", "bf16" or "fp16" (mixed precision through accelerate)
    max_train_samples: int | None = None
    word_piece: str = "last"  # token tagging: label a word at its last (paper) or first piece
    grad_accum: int = 1  # batches per optimizer step
    eval_every: int | None = None  # optimizer steps between dev evaluations; None = each epoch
    keep: str = "best"  # which evaluated state the output holds: best dev score, or the last
    early_stopping: int | None = None  # stop after this many evaluations without a new best
    checkpoint_every: int | None = None  # optimizer steps between checkpoints
    checkpoint_dir: str | None = None  # default: <output>.ckpt
    resume: str | None = None  # a checkpoint folder to continue from
    overwrite: bool = False

    @property
    def kind_options(self) -> dict[str, Any]:
        return {"word_piece": self.word_piece}

    def __post_init__(self) -> None:
        choices = {"method": METHODS, "precision": ("no", "bf16", "fp16"), "keep": KEEP_RULES,
                   "head": HEAD_MODES, "word_piece": ("last", "first")}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise MaskctlError(f"unknown --{name.replace('_', '-')} {value!r}", f"use one of {', '.join(allowed)}")
        for name in ("batch_size", "eval_batch_size", "max_length", "grad_accum", "eval_every", "early_stopping"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise MaskctlError(f"--{name.replace('_', '-')} must be at least 1", "pass a positive number")
        for name in ("weight_decay", "max_grad_norm", "warmup_ratio"):
            value = getattr(self, name)
            if value is not None and (value < 0 or name == "warmup_ratio" and value >= 1):
                raise MaskctlError(f"--{name.replace('_', '-')} is out of range: {value}",
                                   "use a value >= 0" + (" and < 1" if name == "warmup_ratio" else ""))
        if self.init_sparsity is not None and not 0.0 < self.init_sparsity < 1.0:
            raise MaskctlError(f"--init-sparsity must be in (0, 1), got {self.init_sparsity}", "e.g. 0.05")
        if self.early_stopping is not None and self.keep != "best":
            raise MaskctlError("--early-stopping needs --keep best", "drop --early-stopping or keep the best")

    def record(self) -> dict[str, Any]:
        """What a bundle stores about the run: everything that shapes the result, nothing
        operational (output path, checkpointing), so a resumed run writes the same bytes."""
        skip = {"output", "overwrite", "checkpoint_every", "checkpoint_dir", "resume"}
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
                raise MaskctlError(f"the task card: defaults.{name} is not a number: {value!r}",
                                   "fix the card, e.g. lr: 1.0e-3") from None
        return dataclasses.replace(self, **filled)


def _for_method(value: Any, method: str) -> Any:
    return value.get(method) if isinstance(value, dict) else value


def check_card_defaults(defaults: dict[str, Any], where: str = "the task card") -> None:
    """Refuse card ``defaults:`` keys that no setting has (e.g. ``epoch: 3``), with a suggestion."""
    for key, value in defaults.items():
        if key not in CARD_KEYS:
            close = difflib.get_close_matches(key, CARD_KEYS, n=1)
            raise MaskctlError(f"{where}: unknown key {key!r} under defaults:",
                               f"did you mean {close[0]!r}?" if close else f"use {', '.join(CARD_KEYS)}")
        if isinstance(value, dict) and set(value) - set(METHODS):
            raise MaskctlError(f"{where}: defaults.{key} has keys {sorted(value)}",
                               "give one value, or one per method: {mask: ..., finetune: ...}")
