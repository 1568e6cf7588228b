"""``maskctl analyze sparsity``: dev score against the masks' initial sparsity (paper Fig. 1)."""

from __future__ import annotations

from pathlib import Path

import typer

from maskctl.choices import SPARSITY_PERCENTS
from maskctl.cli.common import output_option, overrides_argument, recipe_option, sweep_extend_option, sweep_option
from maskctl.cli.console import console
from maskctl.cli.sweep_progress import SweepProgress

DEFAULT_VALUES = ",".join(map(str, SPARSITY_PERCENTS))


def sparsity(
    overrides: list[str] | None = overrides_argument("epochs=1"),
    recipe: str | None = recipe_option(),
    values: str = typer.Option(
        DEFAULT_VALUES,
        show_default=False,
        help=f"Initial sparsities in percent, comma-separated (default: {DEFAULT_VALUES.replace(',', ', ')}).",
    ),
    seeds: str = typer.Option("0", help="Seeds, comma-separated: every sparsity trains once per seed."),
    out: Path = output_option(
        "Folder for sparsity*.csv/md/json, sparsity.png and runs/.", required=True, aliases=("--out",)
    ),
    sweep: list[str] | None = sweep_option("each run is tuned on it and its best dev score counts"),
    sweep_extend: int | None = sweep_extend_option(),
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
    console.print(
        f"{len(percents) * len(seed_list)} runs: initial sparsity {values}% x seeds {seeds}"
        + (f", each tuned over {the_plan.grid}" if the_plan.grid else ""),
        highlight=False,
    )
    progress = SweepProgress()
    try:
        result = run_sparsity(the_plan, percents, seed_list, out, callback=progress)
    finally:
        progress.close()
    for row in result.summary:
        console.print(
            f"initial sparsity {row['init_sparsity_pct']:g}%: dev {row['dev_mean']:.4f} ± {row['dev_sd']:.4f}"
            f" ({row['seeds']} seeds), final sparsity {row['final_sparsity_pct_mean']:.2f}%",
            highlight=False,
        )
    console.print(
        f"wrote {result.tables['summary']['md']}, {result.tables['runs']['md']} and {result.figure}", highlight=False
    )
