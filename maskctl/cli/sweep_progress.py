"""Rich progress for sweeps and analyses: one line per point, a training bar while it runs."""

from __future__ import annotations

from rich.table import Table

from maskctl.cli.console import LogLines, RichProgress, console, train_progress
from maskctl.experiments.sweep import SweepCallback, SweepResult
from maskctl.experiments.sweep_points import PointResult, format_value
from maskctl.training.callbacks import TrainCallback


class SweepProgress(SweepCallback):
    """Prints ``[i/n] point`` before a run and its dev score after; a point read back from an
    earlier (interrupted) invocation says so instead of showing a bar."""

    def __init__(self) -> None:
        self.bar: RichProgress | LogLines | None = None

    def point_start(self, label: str, index: int, total: int) -> TrainCallback | None:
        self.close()
        console.print(f"[bold]\\[{index}/{total}][/] {label}", highlight=False)
        self.bar = train_progress()
        return self.bar

    def point_end(self, result: PointResult, index: int, total: int) -> None:
        self.close()
        how = "read back from an earlier run" if result.reused else f"{result.wall_seconds:.0f} s"
        sparsity = result.sparsity.get("final")
        extra = f", final sparsity {sparsity:.2%}" if sparsity is not None else ""
        console.print(f"[bold]\\[{index}/{total}][/] {result.label}: dev score {result.score:.4f} ({how}{extra})",
                      highlight=False)

    def note(self, text: str) -> None:
        console.print(f"[yellow]{text}[/]", highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def sweep_table(result: SweepResult) -> Table:
    """The sweep's points with their dev score; the best one marked."""
    table = Table(title=f"sweep over {', '.join(result.grid)}: {result.folder}")
    for key in result.grid:
        table.add_column(key)
    table.add_column("dev score", justify="right")
    table.add_column("final sparsity", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("")
    for point in result.points:
        sparsity = point.sparsity.get("final")
        mark = "best" if point is result.best else ("added at edge" if point.added else "")
        table.add_row(*(format_value(point.point.get(k)) for k in result.grid), f"{point.score:.4f}",
                      f"{sparsity:.2%}" if sparsity is not None else "", f"{point.wall_seconds:.0f}", mark)
    return table
