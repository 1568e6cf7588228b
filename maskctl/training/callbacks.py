"""Training hooks (kept free of heavy imports so the CLI starts fast)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


class TrainCallback:
    """Hooks the CLI renders (a rich progress display on a terminal, plain log lines elsewhere);
    the library itself prints nothing. Every hook is a no-op here, so a callback overrides only
    what it shows."""

    def on_phase(self, name: str, total: int | None, unit: str) -> None:
        """A phase starts outside the optimizer steps (``reading train``, ``tokenising dev``,
        ``evaluating dev``): ``total`` units (examples, batches) to go, None when unknown."""

    def on_advance(self, n: int) -> None:
        """``n`` more units of the current phase are done."""

    def on_phase_end(self, name: str) -> None:
        """The phase ``name`` is over (also when it failed)."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Called once before the first step with the run's facts (task, model, steps,
        ``log_every``: the steps that get an ``on_log`` record...)."""

    def on_step(self, step: int, total: int, loss: float, examples_per_s: float) -> None:
        """Called after each optimizer step; ``loss`` is its mean over micro-batches (and
        processes), the value the output's loss curve keeps."""

    def on_log(self, record: dict[str, Any]) -> None:
        """Every ``--log-every`` steps (and at the last): ``step``, ``total``, ``epoch``, ``loss``
        (mean since the previous record), ``lr``, ``examples_per_s``; trackers get the same."""

    def on_evaluate(
        self, step: int, epoch: float, metrics: dict[str, float], best: bool, sparsity: float | None = None
    ) -> None:
        """Called after each dev evaluation (``--eval-every`` steps, else each epoch); ``best``
        says whether it is the best so far, ``sparsity`` is the mask's share of zeros (masking)."""


@contextlib.contextmanager
def phase(
    callback: TrainCallback, name: str, total: int | None = None, unit: str = "examples"
) -> Iterator[Callable[[int], None]]:
    """``on_phase`` ... ``on_phase_end`` around a block, which gets ``on_advance`` to call."""
    callback.on_phase(name, total, unit)
    try:
        yield callback.on_advance
    finally:
        callback.on_phase_end(name)
