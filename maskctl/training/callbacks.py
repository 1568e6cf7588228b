"""Training hooks (kept free of heavy imports so the CLI starts fast)."""

from __future__ import annotations

from typing import Any


class TrainCallback:
    """Hooks the CLI uses for its progress bar; the library itself prints nothing."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Called once before the first step with the run's facts (task, model, steps...)."""

    def on_step(self, step: int, total: int, loss: float, examples_per_s: float) -> None:
        """Called after each optimizer step."""

    def on_evaluate(self, step: int, epoch: float, metrics: dict[str, float], best: bool) -> None:
        """Called after each dev evaluation (``--eval-every`` steps, else each epoch);
        ``best`` says whether it is the best so far."""
