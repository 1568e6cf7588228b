"""Progress of sweeps and analyses: a line per point, and on a terminal one display holding a bar
of the points (rate and time left) above the running point's own bars; in a log, each point's
line says the time left for the points still to train."""

from __future__ import annotations

from rich.progress import Progress
from rich.table import Table

from maskctl.cli.console import LogLines, RichProgress, console, titled_table, train_progress
from maskctl.cli.progress import bar_columns, duration
from maskctl.experiments.sweep import SweepCallback, SweepResult
from maskctl.experiments.sweep_points import PointResult, format_value
from maskctl.training.callbacks import TrainCallback


class SweepProgress(SweepCallback):
    """Prints ``[i/n] point`` before a run and its dev score after; a point read back from an
    earlier (interrupted) invocation says so instead of showing a bar. The time left is the mean
    time of the points trained so far times the points left (read-back points cost nothing; an
    analysis' run that is a sweep itself reports each inner point under the run's index)."""

    def __init__(self) -> None:
        self.bar: RichProgress | LogLines | None = None
        self.trained: set[int] = set()
        self.spent = 0.0
        self.display: Progress | None = None
        self.points = None

    def point_start(self, label: str, index: int, total: int) -> TrainCallback | None:
        self.close_point()
        if console.is_terminal and self.display is None:
            self.display = Progress(*bar_columns(), console=console)
            self.display.start()
            self.points = self.display.add_task("points", total=total, unit="points", info="", completed=index - 1)
        console.print(f"[bold]\\[{index}/{total}][/] {label}", highlight=False)
        self.bar = train_progress(self.display)
        return self.bar

    def point_end(self, result: PointResult, index: int, total: int) -> None:
        self.close_point()
        if not result.reused:
            self.trained.add(index)
            self.spent += result.wall_seconds
        if self.display is not None:
            self.display.update(self.points, completed=index, total=total)
        how = "read back from an earlier run" if result.reused else f"{result.wall_seconds:.0f} s"
        sparsity = result.sparsity.get("final")
        extra = f", final sparsity {sparsity:.2%}" if sparsity is not None else ""
        left = (
            f"; ~{duration(self.spent / len(self.trained) * (total - index))} left for {total - index} more"
            if self.trained and index < total
            else ""
        )
        console.print(
            f"[bold]\\[{index}/{total}][/] {result.label}: dev score {result.score:.4f} ({how}{extra}){left}",
            highlight=False,
        )

    def note(self, text: str) -> None:
        console.print(f"[yellow]{text}[/]", highlight=False)

    def close_point(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_point()
        if self.display is not None:
            self.display.stop()
            self.display = None


def sweep_table(result: SweepResult) -> Table:
    """The sweep's points with their dev score; the best one marked."""
    table = titled_table(f"sweep over {', '.join(result.grid)}: {result.folder}")
    for key in result.grid:
        table.add_column(key)
    table.add_column("dev score", justify="right")
    table.add_column("final sparsity", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("")
    for point in result.points:
        sparsity = point.sparsity.get("final")
        mark = "best" if point is result.best else ("added at edge" if point.added else "")
        table.add_row(
            *(format_value(point.point.get(k)) for k in result.grid),
            f"{point.score:.4f}",
            f"{sparsity:.2%}" if sparsity is not None else "",
            f"{point.wall_seconds:.0f}",
            mark,
        )
    return table
