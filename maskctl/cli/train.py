"""``maskctl train``: learn a mask (or finetune) for one task and write the result."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import typer

from maskctl.cli.common import overrides_argument, recipe_option, sweep_extend_option, sweep_option
from maskctl.cli.console import console, metrics_table
from maskctl.cli.options import given_on_command_line, options_from, parameters_of
from maskctl.experiments.sweep import SweepSettings
from maskctl.train_settings import TrainArgs

RECIPES = "Recipes and sweeps"
EXTRA = (
    inspect.Parameter(
        "overrides", inspect.Parameter.KEYWORD_ONLY, annotation=list[str] | None, default=overrides_argument()
    ),
    inspect.Parameter(
        "recipe",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=str | None,
        default=recipe_option("giving any of these options", RECIPES),
    ),
    inspect.Parameter(
        "sweep",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=list[str] | None,
        default=sweep_option("the best dev score is kept; runs go to <output>.sweep/", RECIPES),
    ),
    inspect.Parameter(
        "sweep_extend", inspect.Parameter.KEYWORD_ONLY, annotation=int | None, default=sweep_extend_option(RECIPES)
    ),
    *parameters_of(SweepSettings),
)


@options_from(TrainArgs, extra=EXTRA, build=False)
def train(
    ctx: typer.Context,
    values: dict,
    overrides: list[str] | None,
    recipe: str | None,
    sweep: list[str] | None,
    sweep_extend: int | None,
    **backend: Any,
) -> None:
    """Learn a binary mask over a frozen model for one task (or finetune it) and save it.

    With no options this trains the embedded default: the packaged MiniLM on bbc-news.
    With a sweep (--sweep or a recipe's sweep:) every point trains into <output>.sweep/ and the
    best on the dev metric is copied to --output; rerunning the command reuses finished points.
    --sweep-backend ray runs the points as Ray Tune trials (on this machine or a Ray cluster).
    Every option can also come from a recipe or a key=value override.
    """
    from maskctl.cli.console import train_progress
    from maskctl.experiments.recipes import resolve_grid, resolve_run
    from maskctl.training.trainer import train as run_training

    spec = resolve_run(recipe, overrides or [], values, {name for name in values if given_on_command_line(ctx, name)})
    grid = resolve_grid(spec, sweep)
    where = SweepSettings(**{f.name: backend[f.name] for f in dataclasses.fields(SweepSettings)}).check(bool(grid))
    if spec.dropped:
        console.print(f"fixed on the command line, so not swept: {', '.join(spec.dropped)}", highlight=False)
    if grid:
        _sweep(spec, grid, sweep_extend, where)
        return
    args = TrainArgs(**spec.settings)
    progress = train_progress()
    try:
        result = run_training(args, callback=progress)
    finally:
        progress.close()
    if not result.metrics:  # a non-main process of a distributed run: the main one reports
        return
    console.print(metrics_table(f"{result.method}: {result.output}", {"dev": result.metrics}))
    extra = ""
    if result.sparsity:
        extra = f", mask sparsity {result.sparsity['init']:.2%} -> {result.sparsity['final']:.2%}"
    console.print(f"wrote {result.output} in {result.wall_seconds:.0f} s{extra}", highlight=False)


def _sweep(spec, grid: dict, sweep_extend: int | None, backend: SweepSettings) -> None:
    from maskctl.cli.sweep_progress import SweepProgress, sweep_table
    from maskctl.experiments.sweep import run_sweep

    progress = SweepProgress()
    try:
        result = run_sweep(
            spec.settings,
            grid,
            extend=sweep_extend if sweep_extend is not None else spec.sweep_extend,
            callback=progress,
            backend=backend,
        )
    finally:
        progress.close()
    console.print(sweep_table(result))
    console.print(
        f"best {result.best.label} (dev score {result.best.score:.4f}) copied to {result.output}; "
        f"table {result.table['md']}" + (f", figure {result.figure}" if result.figure else ""),
        highlight=False,
    )
