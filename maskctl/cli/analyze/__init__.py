"""``maskctl analyze ...``: one thin module per analysis, each calling ``maskctl.analysis``."""

from __future__ import annotations

import typer

from maskctl.cli.analyze import connect, diff, layers, sparsity, tsne
from maskctl.cli.help import Group, command

app = typer.Typer(
    cls=Group,
    help="Rerun the paper's analyses and draw its figures (tables + PNG).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for name, run in (
    ("diff", diff.diff),
    ("connect", connect.connect),
    ("tsne", tsne.tsne),
    ("sparsity", sparsity.sparsity),
    ("layers", layers.layers),
):
    command(app, name, run)
