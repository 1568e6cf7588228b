"""``maskctl tasks``: list the registered tasks (name, kind, metric, data source)."""

from __future__ import annotations

import typer
from rich.cells import cell_len

from maskctl.cli.console import console, print_error, titled_table

COLUMNS = ("name", "kind", "metric", "labels", "data")
DROPPED_FIRST = "labels"  # what a narrow terminal does without, rather than break a word of the rest
OVERHEAD = 3  # a column's border and padding


def list_tasks(
    names_only: bool = typer.Option(False, "--names", help="Only list names (imports no plugin)."),
) -> None:
    """List the tasks registered through the `maskctl.tasks` entry points."""
    from maskctl.errors import TaskError
    from maskctl.tasks.registry import registered_cards, task_names

    if names_only:
        for name in task_names():
            console.print(name, highlight=False)
        return
    rows = []
    for name, card in registered_cards():
        if isinstance(card, TaskError):
            print_error(card.message, card.fix)
            continue
        rows.append((name, card.kind, card.metric, str(len(card.labels)), card.data_source))
    columns = fitting_columns(rows, console.width)
    table = titled_table(f"{len(rows)} registered tasks")
    for column in columns:
        table.add_column(column, no_wrap=column != "data", overflow="fold")
    for row in rows:
        table.add_row(*(value for column, value in zip(COLUMNS, row) if column in columns))
    console.print(table)


def fitting_columns(rows: list[tuple[str, ...]], width: int) -> tuple[str, ...]:
    """Every column if they fit ``width`` with every word whole (each column but the data source
    as wide as its longest value, the data source as its longest word: it wraps between words),
    else all but ``DROPPED_FIRST``."""
    needed = 1  # the left border
    for i, column in enumerate(COLUMNS):
        values = [row[i] for row in rows] + [column]
        needed += OVERHEAD + max(
            cell_len(word) for value in values for word in (value.split() if column == "data" else [value])
        )
    return COLUMNS if needed <= width else tuple(c for c in COLUMNS if c != DROPPED_FIRST)
