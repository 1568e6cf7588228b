"""Shared rich console, error line, tables and the training progress display for the CLI."""

from __future__ import annotations

import os
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from maskctl.cli.progress import Heartbeat, PlainLines, bar_columns, pace
from maskctl.training.callbacks import TrainCallback

console = Console()
err_console = Console(stderr=True)


def print_error(message: str, fix: str | None) -> None:
    """One line: what went wrong, then the fix (both as plain text: a syntax like
    ``hf://user/name[/file.bundle]`` is not rich markup)."""
    line = f"[bold red]error:[/] {escape(message)}" + (f" — {escape(fix)}" if fix else "")
    err_console.print(line, highlight=False, soft_wrap=True)


def titled_table(title: str, **options: Any) -> Table:
    """A table at least as wide as its title, so that the title stays on one line: a narrow
    table (a metric and a score) would otherwise wrap a bundle's path over three lines."""
    return Table(title=title, min_width=cell_len(title), **options)


def metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """One row per metric, one column per split: as narrow as the longest metric name, so that
    a task with many metrics (tagging: seqeval's and token accuracy) fits 80 columns. Counts
    (ints) print as counts, scores with four decimals."""
    table = titled_table(title)
    table.add_column("metric")
    for split in rows:
        table.add_column(split, justify="right")
    first = next(iter(rows.values()))
    for key in [k for k in first if k not in ("score", "n")] + ["n"]:
        label = "examples" if key == "n" else key.replace("_", " ")
        table.add_row(label, *(_cell(values.get(key)) for values in rows.values()))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 epoch``, ``3 epochs``, ``1 process``."""
    return f"{count} {word if count == 1 else words or word + 's'}"


def run_summary(info: dict[str, Any]) -> str:
    """The line that opens a training run: what trains on what, and how long it will take."""
    return (
        f"{info['method']} {info['task']} on {info['model']} ({info['device']}): "
        f"{info['train_examples']} train / {info['dev_examples']} dev examples, "
        f"{plural(info['epochs'], 'epoch')}, {plural(info['total_steps'], 'step')}, lr {info['lr']:g}, "
        f"global batch {info['global_batch']} ({plural(info['processes'], 'process', 'processes')}), "
        f"{info['trainable']:,} trainable values"
        + (f", resumed at step {info['resumed_at']}" if info.get("resumed_at") is not None else "")
    )


def evaluation_line(step: int, epoch: float, metrics: dict[str, float], best: bool, sparsity: float | None) -> str:
    """One dev evaluation: the score, every other metric, the mask's sparsity, a best marker."""
    others = ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items() if k != "score"
    )
    return (
        f"epoch {epoch:g} (step {step}): dev score {metrics['score']:.4f} ({others})"
        + (f", mask sparsity {sparsity:.2%}" if sparsity is not None else "")
        + (" (best so far)" if best else "")
    )


def train_progress(shared: Progress | None = None) -> RichProgress | LogLines:
    """A live rich display on a terminal; plain lines anywhere else (a log file, CI), where a
    live display shows nothing until it ends (``maskctl/cli/progress.py`` says when lines come).
    ``shared``: a display already running (a sweep's), which the run's bars join."""
    return RichProgress(shared) if console.is_terminal else LogLines()


class RichProgress(TrainCallback):
    """A rich progress bar of the steps with loss, rate and time left, a bar for each phase
    outside the steps (reading, tokenising, evaluating) while it runs; evaluations as lines
    above them. With ``shared`` the bars join that display and leave it running on ``close``.

    Under torchrun / accelerate launch only the first process (RANK 0) prints.
    """

    def __init__(self, shared: Progress | None = None) -> None:
        self.quiet = os.environ.get("RANK", "0") != "0"
        self.progress = shared or Progress(*bar_columns(), console=console, transient=False)
        self.owned = shared is None
        self.started = not self.owned
        self.bar = None
        self.phase = None

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def on_phase(self, name: str, total: int | None, unit: str) -> None:
        if not self.quiet:
            self._start()
            self.phase = self.progress.add_task(name, total=total, unit=unit if total is not None else "", info="")

    def on_advance(self, n: int) -> None:
        if self.phase is not None:
            self.progress.advance(self.phase, n)

    def on_phase_end(self, name: str) -> None:
        if self.phase is not None:
            self.progress.remove_task(self.phase)
            self.phase = None

    def on_start(self, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        self._start()
        self.progress.console.print(run_summary(info), highlight=False)
        self.bar = self.progress.add_task(
            "train", total=info["total_steps"], unit="steps", info="", completed=info.get("resumed_at") or 0
        )

    def on_step(self, step: int, total: int, loss: float, examples_per_s: float) -> None:
        if self.bar is not None:
            self.progress.update(self.bar, completed=step, info=f"loss {loss:.4f}, {examples_per_s:.1f} ex/s")

    def on_evaluate(
        self, step: int, epoch: float, metrics: dict[str, float], best: bool, sparsity: float | None = None
    ) -> None:
        if not self.quiet:
            self.progress.console.print(evaluation_line(step, epoch, metrics, best, sparsity), highlight=False)

    def close(self) -> None:
        for task in (self.phase, self.bar):
            if task is not None and not self.owned:
                self.progress.remove_task(task)
        self.phase = self.bar = None
        if self.started and self.owned:
            self.progress.stop()
            self.started = False


class LogLines(TrainCallback):
    """Plain lines for output that is not a terminal: one as each phase starts, one every
    ``--log-every`` steps (mean loss since the last, lr, speed), one per dev evaluation, and a
    heartbeat at least every 30 s in between (the step, its loss, the time left; a phase's
    progress) so that a log never stays silent for minutes. A step that gets a record gets no
    heartbeat beside it (``on_start`` says which steps do).

    Under torchrun / accelerate launch only the first process (RANK 0) prints.
    """

    def __init__(self, heartbeat: Heartbeat | None = None) -> None:
        self.quiet = os.environ.get("RANK", "0") != "0"
        self.heartbeat = heartbeat or Heartbeat()
        self.phase: PlainLines | None = None
        self.started, self.first_step, self.log_every = self.heartbeat.clock(), 0, 0

    def _line(self, text: str) -> None:
        if not self.quiet:
            console.print(text, highlight=False, markup=False, soft_wrap=True)
        self.heartbeat.beat()

    def on_phase(self, name: str, total: int | None, unit: str) -> None:
        self.phase = PlainLines(console, name, total, unit, self.heartbeat, self.quiet)

    def on_advance(self, n: int) -> None:
        if self.phase is not None:
            self.phase.advance(n)

    def on_phase_end(self, name: str) -> None:
        self.phase = None

    def on_start(self, info: dict[str, Any]) -> None:
        self._line(run_summary(info))
        self.started, self.first_step = self.heartbeat.clock(), info.get("resumed_at") or 0
        self.log_every = info.get("log_every") or 0

    def on_step(self, step: int, total: int, loss: float, examples_per_s: float) -> None:
        recorded = step == total or (self.log_every and step % self.log_every == 0)
        if not recorded and self.heartbeat.due():
            left = pace(step - self.first_step, total - self.first_step, self.heartbeat.clock() - self.started, "steps")
            self._line(
                f"step {step}/{total}: loss {loss:.4f}, {examples_per_s:.1f} ex/s" + (f" ({left})" if left else "")
            )

    def on_log(self, record: dict[str, Any]) -> None:
        self._line(
            f"step {record['step']}/{record['total']} epoch {record['epoch']:g}: loss {record['loss']:.4f}, "
            f"lr {record['lr']:.3g}, {record['examples_per_s']:.1f} ex/s"
        )

    def on_evaluate(
        self, step: int, epoch: float, metrics: dict[str, float], best: bool, sparsity: float | None = None
    ) -> None:
        self._line(evaluation_line(step, epoch, metrics, best, sparsity))

    def close(self) -> None:
        """Nothing to stop (the same interface as ``RichProgress``)."""
