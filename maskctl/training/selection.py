"""Which trained state a run keeps: the best on the dev metric (default) or the last.

``BestKeeper`` records every dev evaluation (``--eval-every`` steps, else each epoch), keeps a
copy of the state at the best one (binary masks and head tensors when masking: a few MB; the
weights when finetuning), and says when ``--early-stopping`` patience has run out. This is
``load_best_model_at_end`` and ``EarlyStoppingCallback`` of the Hugging Face ``Trainer``: a run
that peaks at epoch 11 of 15 keeps epoch 11. Its state travels in checkpoints, so a resumed run
keeps the same evaluation and writes the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

PREFIX = "best/"


class BestKeeper:
    """Dev history, the index of the kept evaluation, and the state saved there."""

    def __init__(self, keep: str, patience: int | None, snapshot: Callable[[], dict[str, torch.Tensor]]) -> None:
        self.keep = keep
        self.patience = patience
        self.snapshot = snapshot
        self.history: list[dict[str, Any]] = []
        self.best_index: int | None = None
        self.state: dict[str, torch.Tensor] | None = None  # taken at best_index (keep="best" only)

    def record(self, step: int, epoch: float, metrics: dict[str, float]) -> bool:
        """Add one evaluation; returns whether it is the best so far (ties keep the earlier)."""
        self.history.append({"epoch": epoch, "step": step, "dev": metrics})
        score = metrics["score"]
        best = None if self.best_index is None else self.history[self.best_index]["dev"]["score"]
        if best is None or (math.isfinite(score) and (not math.isfinite(best) or score > best)):
            self.best_index = len(self.history) - 1
            if self.keep == "best":
                self.state = self.snapshot()
            return True
        return False

    @property
    def should_stop(self) -> bool:
        """Early stopping: ``patience`` evaluations in a row without a new best."""
        return (
            self.patience is not None
            and self.best_index is not None
            and len(self.history) - 1 - self.best_index >= self.patience
        )

    @property
    def kept_index(self) -> int | None:
        if not self.history:
            return None
        return self.best_index if self.keep == "best" else len(self.history) - 1

    def kept_state(self) -> dict[str, torch.Tensor] | None:
        """The saved state to restore, or None when the model already holds the kept one."""
        if self.keep != "best" or self.best_index is None or self.best_index == len(self.history) - 1:
            return None
        return self.state

    def record_of_kept(self) -> dict[str, Any]:
        """What bundles store about the selection (the whole history sits beside it)."""
        index = self.kept_index
        entry = self.history[index] if index is not None else {}
        return {
            "rule": self.keep,
            "index": index,
            "step": entry.get("step"),
            "epoch": entry.get("epoch"),
            "evaluations": len(self.history),
            "stopped_early": self.should_stop,
        }

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v for k, v in (self.state or {}).items()}

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"best_index": self.best_index, "has_state": self.state is not None}

    def restore(
        self, history: list[dict[str, Any]], meta: dict[str, Any] | None, tensors: dict[str, torch.Tensor]
    ) -> None:
        self.history = list(history)
        meta = meta or {}
        self.best_index = meta.get("best_index")
        if meta.get("has_state"):
            self.state = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
