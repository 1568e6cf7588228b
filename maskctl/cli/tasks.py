"""``maskctl tasks``: list the registered tasks (name, kind, metric, data source)."""

from __future__ import annotations

import typer
from rich.table import Table

from maskctl.cli.console import console, print_error


def list_tasks(
    names_only: bool = typer.Option(False, "--names", help="Only list names (imports no plugin)."),
) -> None:
    """List the tasks registered through the `maskctl.tasks` entry points."""
    from maskctl.errors import MaskctlError
    from maskctl.tasks.registry import get_card, task_names

    names = task_names()
    if names_only:
        for name in names:
            console.print(name, highlight=False)
        return
    table = Table(title=f"{len(names)} registered tasks")
    for column in ("name", "kind", "metric", "labels", "data"):
        table.add_column(column, overflow="fold")
    for name in names:
        try:
            card = get_card(name)
        except MaskctlError as exc:
            print_error(exc.message, exc.fix)
            continue
        table.add_row(name, card.kind, card.metric, str(len(card.labels)), card.data_source)
    console.print(table)
