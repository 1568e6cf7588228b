"""``maskctl analyze sparsity``: dev score against the masks' initial sparsity (paper Fig. 1)."""

from __future__ import annotations

from pathlib import Path

import typer

from maskctl.cli.common import output_option
from maskctl.cli.console import console
from maskctl.cli.sweep_progress import SweepProgress

DEFAULT_VALUES = "1,3,5,10,15,20,30,40,50,60,70,80,90,95"


def sparsity(
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of the recipe, e.g. epochs=1."),
    recipe: str | None = typer.Option(None, help="Recipe (path or shipped name) giving the training settings."),
    values: str = typer.Option(DEFAULT_VALUES, help="Initial sparsities in percent, comma-separated."),
    seeds: str = typer.Option("0", help="Seeds, comma-separated: every sparsity trains once per seed."),
    out: Path = output_option("Folder for sparsity*.csv/md/json, sparsity.png and runs/.", required=True, aliases=("--out",)),
    sweep: list[str] | None = typer.Option(
        None, help="Tune each run on a grid, key=v1,v2 (replaces the recipe's sweep); the best dev score counts."),
    sweep_extend: int | None = typer.Option(None, min=0, help="Edge extensions of a one-key lr sweep."),
) -> None:
    """Train a mask at each initial sparsity and seed; table per run, mean ± sd, and a figure.

    Settings come from --recipe and key=value overrides exactly as for `maskctl train`.
    Rerunning the same command reads finished runs back from OUT/runs/ instead of retraining.
    """
    from maskctl.analysis.runs import parse_numbers, plan
    from maskctl.analysis.sparsity import VARIED, parse_percents, run_sparsity

    percents = parse_percents(values)
    seed_list = parse_numbers(seeds, "--seeds", int)
    the_plan = plan(recipe, overrides, sweep, sweep_extend, VARIED, "sparsity")
    console.print(f"{len(percents) * len(seed_list)} runs: initial sparsity {values}% x seeds {seeds}"
                  + (f", each tuned over {the_plan.grid}" if the_plan.grid else ""), highlight=False)
    progress = SweepProgress()
    try:
        result = run_sparsity(the_plan, percents, seed_list, out, callback=progress)
    finally:
        progress.close()
    for row in result.summary:
        console.print(f"initial sparsity {row['init_sparsity_pct']:g}%: dev {row['dev_mean']:.4f} ± {row['dev_sd']:.4f}"
                      f" ({row['seeds']} seeds), final sparsity {row['final_sparsity_pct_mean']:.2f}%", highlight=False)
    console.print(f"wrote {result.tables['summary']['md']}, {result.tables['runs']['md']} and {result.figure}",
                  highlight=False)
