"""``maskctl analyze ...``: one thin module per analysis, each calling ``maskctl.analysis``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Rerun the paper's analyses and draw its figures (tables + PNG).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

from maskctl.cli.analyze import connect, diff, tsne

app.command("diff")(diff.diff)
app.command("connect")(connect.connect)
app.command("tsne")(tsne.tsne)

from maskctl.cli.analyze import layers, sparsity

app.command("sparsity")(sparsity.sparsity)
app.command("layers")(layers.layers)
