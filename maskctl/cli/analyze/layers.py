"""``maskctl analyze layers``: mask only the bottom K or the top K blocks (paper Fig. 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from maskctl.cli.common import output_option, overrides_argument, recipe_option, sweep_extend_option, sweep_option
from maskctl.cli.console import console
from maskctl.cli.sweep_progress import SweepProgress


def layers(
    overrides: list[str] | None = overrides_argument("epochs=1"),
    recipe: str | None = recipe_option(),
    k: str | None = typer.Option(None, "--k", help="Block counts K, comma-separated (default: 1 to all blocks)."),
    seeds: str = typer.Option("0", help="Seeds, comma-separated: every setting trains once per seed."),
    out: Path = output_option(
        "Folder for layers*.csv/md/json, layers.png and runs/.", required=True, aliases=("--out",)
    ),
    sweep: list[str] | None = sweep_option("each run is tuned on it and its best dev score counts"),
    sweep_extend: int | None = sweep_extend_option(),
) -> None:
    """Mask the bottom K and the top K blocks for each K and seed; table, mean ± sd, two-curve figure.

    Settings come from --recipe and key=value overrides exactly as for `maskctl train`; the
    pooler and classifier follow the recipe's head (masked in the paper). Rerunning the same
    command reads finished runs back from OUT/runs/ instead of retraining.
    """
    from maskctl.analysis.layers import VARIED, count_blocks, parse_ks, run_layers
    from maskctl.analysis.runs import parse_numbers, plan

    seed_list = parse_numbers(seeds, "--seeds", int)
    the_plan = plan(recipe, overrides, sweep, sweep_extend, VARIED, "layers")
    n_blocks = count_blocks(the_plan.settings.get("model"))
    ks = parse_ks(k, n_blocks)
    runs = len({(d, kk) if kk < n_blocks else "all" for d in ("bottom", "top") for kk in ks}) * len(seed_list)
    console.print(
        f"{runs} runs: bottom-up and top-down K = {','.join(map(str, ks))} of {n_blocks} blocks x seeds "
        f"{seeds}" + (f", each tuned over {the_plan.grid}" if the_plan.grid else ""),
        highlight=False,
    )
    progress = SweepProgress()
    try:
        result = run_layers(the_plan, ks, seed_list, out, callback=progress, n_blocks=n_blocks)
    finally:
        progress.close()
    for row in result.summary:
        console.print(
            f"{row['direction']:>9} K={row['k']} (blocks {row['blocks']}): dev {row['dev_mean']:.4f} ± "
            f"{row['dev_sd']:.4f} ({row['seeds']} seeds)",
            highlight=False,
        )
    console.print(
        f"wrote {result.tables['summary']['md']}, {result.tables['runs']['md']} and {result.figure}", highlight=False
    )
