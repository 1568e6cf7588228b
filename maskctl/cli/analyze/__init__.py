"""``maskctl analyze ...``: one thin module per analysis, each calling ``maskctl.analysis``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Rerun the paper's analyses and draw its figures (tables + PNG).",
    no_args_is_help=True,
)
