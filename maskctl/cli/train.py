"""``maskctl train``: learn a mask (or finetune) for one task and write the result."""

from __future__ import annotations

from typing import Optional

import typer

from maskctl.cli.console import console, metrics_table


def train(
    ctx: typer.Context,
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides of the recipe, e.g. lr=3e-3."),
    recipe: Optional[str] = typer.Option(None, help="YAML recipe (path or shipped name) giving any of these options."),
    model: Optional[str] = typer.Option(None, help="Hub id or local folder (default: the packaged MiniLM)."),
    task: str = typer.Option("bbc-news", help="Registered task name or path to a YAML task card."),
    output: Optional[str] = typer.Option(None, help="Output *.bundle (mask) or folder (finetune)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default: the task card's, else 3)."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
    batch_size: int = typer.Option(32, help="Training batch size."),
    eval_batch_size: int = typer.Option(64, help="Evaluation batch size."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: the card's, else 1e-3 mask, 5e-5 finetune)."),
    weight_decay: Optional[float] = typer.Option(None, min=0, help="AdamW weight decay, never on biases/LayerNorm (default: the card's, else 0)."),
    warmup_ratio: Optional[float] = typer.Option(None, min=0, max=0.999, help="Finetuning: share of steps with linear warm-up (default: the card's, else 0)."),
    max_grad_norm: Optional[float] = typer.Option(None, min=0, help="Clip the gradient norm; 0 = never (default: the card's, else 1.0 finetune, 0 mask)."),
    max_length: int = typer.Option(128, help="Maximum tokens per example."),
    init_sparsity: Optional[float] = typer.Option(None, help="Fraction of mask bits that start at zero (default: the card's, else 0.05)."),
    threshold: float = typer.Option(0.01, help="Score threshold tau of the binary mask."),
    mask_blocks: Optional[str] = typer.Option(None, help="Blocks to mask: 2-11, all, top:K, bottom:K (default: all but the lowest two)."),
    head: Optional[str] = typer.Option(None, help="Classifier: mask (paper) or train (default: the card's, else mask)."),
    method: str = typer.Option("mask", help="mask (learn a binary mask) or finetune (all weights)."),
    seed: int = typer.Option(0, help="Random seed (data order, classifier init, mask init)."),
    data_dir: Optional[str] = typer.Option(None, help="Folder with the task's data files."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("no", help="Mixed precision on CUDA: no, bf16 or fp16."),
    max_train_samples: Optional[int] = typer.Option(None, help="Use only the first N training examples."),
    word_piece: str = typer.Option("last", help="Token tagging: read a word at its last (paper) or first piece."),
    grad_accum: int = typer.Option(1, help="Batches per optimizer step (gradient accumulation)."),
    eval_every: Optional[int] = typer.Option(None, min=1, help="Evaluate on dev every N optimizer steps (default: each epoch)."),
    keep: str = typer.Option("best", help="Output the best dev evaluation (best) or the final state (last)."),
    early_stopping: Optional[int] = typer.Option(None, min=1, help="Stop after N evaluations without a new best dev score."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Write a checkpoint every N optimizer steps."),
    checkpoint_dir: Optional[str] = typer.Option(None, help="Checkpoint folder (default: <output>.ckpt)."),
    resume: Optional[str] = typer.Option(None, help="Continue a run from its checkpoint folder."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
    sweep: Optional[list[str]] = typer.Option(
        None, help="Train a grid, keep the best dev score: key=v1,v2,... (repeatable, at most two keys; "
                   "replaces the recipe's sweep). Runs go to <output>.sweep/."),
    sweep_extend: Optional[int] = typer.Option(
        None, min=0, help="Points a one-key lr sweep may add beyond the edge holding the best (x3 or /3 each; "
                          "default: the recipe's, else 3; 0: never)."),
) -> None:
    """Learn a binary mask over a frozen model for one task (or finetune it) and save it.

    With no options this trains the embedded default: the packaged MiniLM on bbc-news.
    With a sweep (--sweep or a recipe's sweep:) every point trains into <output>.sweep/ and the
    best on the dev metric is copied to --output; rerunning the command reuses finished points.
    """
    from maskctl.cli.console import RichProgress
    from maskctl.recipes import recipe_fields, resolve_run
    from maskctl.sweep import resolve_grid
    from maskctl.training.trainer import TrainArgs
    from maskctl.training.trainer import train as run_training

    given = {name: value for name, value in ctx.params.items() if name in recipe_fields()}
    spec = resolve_run(recipe, overrides or [], given, {name for name in given if _explicit(ctx, name)})
    grid = resolve_grid(spec, sweep)
    if spec.dropped:
        console.print(f"fixed on the command line, so not swept: {', '.join(spec.dropped)}", highlight=False)
    if grid:
        _sweep(spec, grid, sweep_extend)
        return
    args = TrainArgs(**spec.settings)
    progress = RichProgress()
    try:
        result = run_training(args, callback=progress)
    except ValueError as exc:  # bad option values from the masking core
        from maskctl.errors import MaskctlError

        raise MaskctlError(str(exc), "see `maskctl train --help`") from exc
    finally:
        progress.close()
    if not result.metrics:  # a non-main process of a distributed run: the main one reports
        return
    console.print(metrics_table(f"{result.method}: {result.output}", {"dev": result.metrics}))
    extra = ""
    if result.sparsity:
        extra = f", mask sparsity {result.sparsity['init']:.2%} -> {result.sparsity['final']:.2%}"
    console.print(f"wrote {result.output} in {result.wall_seconds:.0f} s{extra}", highlight=False)


def _sweep(spec, grid: dict, sweep_extend: Optional[int]) -> None:
    from maskctl.cli.sweep_progress import SweepProgress, sweep_table
    from maskctl.errors import MaskctlError
    from maskctl.sweep import run_sweep

    progress = SweepProgress()
    try:
        result = run_sweep(spec.settings, grid, extend=sweep_extend if sweep_extend is not None else spec.sweep_extend,
                           callback=progress)
    except ValueError as exc:  # bad option values from the masking core
        raise MaskctlError(str(exc), "see `maskctl train --help`") from exc
    finally:
        progress.close()
    console.print(sweep_table(result))
    console.print(f"best {result.best.label} (dev score {result.best.score:.4f}) copied to {result.output}; "
                  f"table {result.table['md']}" + (f", figure {result.figure}" if result.figure else ""),
                  highlight=False)


def _explicit(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed this option (compared by name: typer may vendor its own click)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
