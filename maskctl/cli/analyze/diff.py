"""``maskctl analyze diff``: mask difference s between tasks, per layer and block (paper §6.2)."""

from __future__ import annotations

from pathlib import Path

import typer

from maskctl.cli.common import output_option
from maskctl.cli.console import console, titled_table


def diff(
    bundles: list[str] = typer.Argument(
        ..., help="Two or more *.bundle files (or hf://user/name) trained on the same base model."
    ),
    out: Path = output_option(
        "Folder for mask_diff*.csv/md/json, mask_changes.* and mask_diff.png.", required=True, aliases=("--out",)
    ),
) -> None:
    """Mask difference s = |M1-M2| / (|M1-M1,init| + |M2-M2,init|) of every pair, per block."""
    from maskctl.analysis.diff import mask_difference

    result = mask_difference(bundles, out)
    table = titled_table("mask difference s per block")
    table.add_column("pair")
    groups = list(dict.fromkeys(row["group"] for row in result.blocks))
    for group in groups:
        table.add_column(group.removeprefix("block "), justify="right")
    for pair in dict.fromkeys(row["pair"] for row in result.blocks):
        values = {row["group"]: row["s"] for row in result.blocks if row["pair"] == pair}
        table.add_row(pair, *("" if values.get(g) is None else f"{values[g]:.3f}" for g in groups))
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"wrote {len(result.files)} files to {out}", highlight=False, soft_wrap=True)
