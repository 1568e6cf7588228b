"""Progress of long work, shown the same way by every command: ``train`` (reading, tokenising,
steps, evaluations), ``eval`` (batches), sweeps and the analyses (runs, evaluations).

On a terminal: a rich bar with its rate and the time left. Anywhere else (a log file, CI, a
pipe), where a live display shows nothing until it ends: plain lines, one as the work starts and
then one at least every ``HEARTBEAT_S`` seconds while it runs, whatever ``--log-every`` says. Why
both rules: a job log that stays silent for minutes reads as a hung job, and a log that prints a
line per batch is unreadable; a line every half minute is what CI runners and ``tail -f`` need.

``Heartbeat`` takes its clock as an argument, so tests drive it with a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

HEARTBEAT_S = 30.0


class Heartbeat:
    """When the next plain line is due: ``due()`` is true when ``every`` seconds of ``clock``
    have passed since the last line (``beat()`` records one printed for another reason)."""

    def __init__(self, every: float = HEARTBEAT_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.last = clock()

    def due(self) -> bool:
        if self.clock() - self.last >= self.every:
            self.beat()
            return True
        return False

    def beat(self) -> None:
        self.last = self.clock()


def duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 05 min``: the precision a time left deserves."""
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def pace(done: int, total: int | None, seconds: float, unit: str) -> str:
    """``2.5 batches/s, ~40 s left``: the rate so far and, with a total, the time left at it."""
    if done <= 0 or seconds <= 0:
        return ""
    rate = done / seconds
    text = f"{rate:.3g} {unit}/s" if rate >= 1 else f"{seconds / done:.3g} s/{_singular(unit)}"
    if total:
        text += f", ~{duration((total - done) / rate)} left"
    return text


def _singular(unit: str) -> str:
    return unit.removesuffix("es") if unit.endswith("ches") else unit.removesuffix("s")


class RateColumn(ProgressColumn):
    """The bar's rate in its own unit (``12.3 batches/s``, ``4.1 s/step`` when slower than one a second)."""

    def render(self, task: Task) -> Text:
        speed, unit = task.speed, task.fields.get("unit", "")
        if not speed or not unit:
            return Text("")
        shown = f"{speed:.3g} {unit}/s" if speed >= 1 else f"{1 / speed:.3g} s/{_singular(unit)}"
        return Text(shown, style="progress.data.speed")


def bar_columns() -> tuple[ProgressColumn, ...]:
    """What every bar shows: name, bar, done/total, rate, time left, and a free ``info`` field."""
    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )


class PlainLines:
    """One unit of work (``evaluating test``, 6 batches) as plain lines: at the start, when the
    heartbeat is due, and none at the end (the caller prints the result)."""

    def __init__(
        self,
        console: Console,
        name: str,
        total: int | None,
        unit: str,
        heartbeat: Heartbeat | None = None,
        quiet: bool = False,
    ) -> None:
        self.console, self.name, self.total, self.unit, self.quiet = console, name, total, unit, quiet
        self.heartbeat = heartbeat or Heartbeat()
        self.done, self.started = 0, self.heartbeat.clock()
        count = f" ({total} {_singular(unit) if total == 1 else unit})" if total is not None else ""
        self.line(f"{name}{count} ...")

    def line(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)
        self.heartbeat.beat()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.heartbeat.due():
            of = f"/{self.total}" if self.total is not None else ""
            rate = pace(self.done, self.total, self.heartbeat.clock() - self.started, self.unit)
            self.line(f"{self.name}: {self.done}{of} {self.unit}" + (f" ({rate})" if rate else ""))


@contextmanager
def work(
    console: Console, name: str, total: int | None, unit: str, heartbeat: Heartbeat | None = None
) -> Iterator[Callable[[int], None]]:
    """A block of work with a known number of units: a bar on a terminal, plain lines elsewhere;
    the block gets ``advance(n)`` to call."""
    if console.is_terminal:
        with Progress(*bar_columns(), console=console, transient=True) as progress:
            bar = progress.add_task(name, total=total, unit=unit, info="")
            yield lambda n=1: progress.advance(bar, n)
        return
    lines = PlainLines(console, name, total, unit, heartbeat)
    yield lines.advance
