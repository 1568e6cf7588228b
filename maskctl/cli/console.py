"""Shared rich console, error line and training progress bar for the CLI."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from maskctl.training.callbacks import TrainCallback

console = Console()
err_console = Console(stderr=True)


def print_error(message: str, fix: str | None) -> None:
    """One line: what went wrong, then the fix."""
    line = f"[bold red]error:[/] {message}" + (f" — {fix}" if fix else "")
    err_console.print(line, highlight=False, soft_wrap=True)


def metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    table = Table(title=title)
    table.add_column("split")
    keys = [k for k in next(iter(rows.values())) if k not in ("score", "n")]
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("examples", justify="right")
    for split, values in rows.items():
        table.add_row(split, *(f"{values[k]:.4f}" for k in keys), str(int(values.get("n", 0))))
    return table


class RichProgress(TrainCallback):
    """A rich progress bar with loss, examples/s and ETA; epoch metrics as lines above it.

    Under torchrun / accelerate launch only the first process (RANK 0) prints.
    """

    def __init__(self) -> None:
        self.quiet = os.environ.get("RANK", "0") != "0"
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.1f} ex/s"),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.bar = None

    def on_start(self, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        console.print(
            f"[bold]{info['method']}[/] {info['task']} on {info['model']} ({info['device']}): "
            f"{info['train_examples']} train / {info['dev_examples']} dev examples, "
            f"{info['epochs']} epochs, {info['total_steps']} steps, lr {info['lr']:g}, "
            f"global batch {info['global_batch']} ({info['processes']} processes), "
            f"{info['trainable']:,} trainable values"
            + (f", resumed at step {info['resumed_at']}" if info.get("resumed_at") is not None else ""),
            highlight=False,
        )
        self.progress.start()
        self.bar = self.progress.add_task("train", total=info["total_steps"], loss=float("nan"), rate=0.0)

    def on_step(self, step: int, total: int, loss: float, examples_per_s: float) -> None:
        if self.bar is not None:
            self.progress.update(self.bar, completed=step, loss=loss, rate=examples_per_s)

    def on_evaluate(self, step: int, epoch: float, metrics: dict[str, float], best: bool) -> None:
        if not self.quiet:
            self.progress.console.print(f"epoch {epoch:g} (step {step}): dev score {metrics['score']:.4f}"
                                        + (" (best so far)" if best else ""), highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.progress.stop()
