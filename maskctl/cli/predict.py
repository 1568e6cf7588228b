"""``maskctl predict``: run new text through one or more bundles on one resident base model."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from maskctl.cli.common import (
    BUNDLE_HELP,
    MODEL_PANEL,
    RUN_PANEL,
    device_option,
    model_option,
    output_option,
    overwrite_option,
)
from maskctl.cli.console import err_console

INPUT = "Input"
SHOWN_PROBLEMS = 5  # skipped lines named one by one; the rest counted


def predict(
    bundles: list[str] = typer.Argument(
        ..., help="One bundle per task, all of one base model: " + BUNDLE_HELP, show_default=False
    ),
    input_file: str | None = typer.Option(
        None,
        "--input",
        metavar="FILE",
        help="A csv, tsv, json or parquet file (columns named as in the task's data, or text, "
        "tokens, ...), JSON lines (.jsonl) or plain text lines; - for stdin.",
        rich_help_panel=INPUT,
    ),
    text: list[str] | None = typer.Option(
        None, "--text", metavar="TEXT", help="Text to predict (repeatable).", rich_help_panel=INPUT
    ),
    text_pair: list[str] | None = typer.Option(
        None,
        "--text-pair",
        metavar="TEXT",
        help="Second text of a pair, one per --text (sentence-pair tasks).",
        rich_help_panel=INPUT,
    ),
    text_column: list[str] | None = typer.Option(
        None,
        "--text-column",
        metavar="COLUMN",
        help="The --input column with the text (twice: text and text_pair), if not text.",
        rich_help_panel=INPUT,
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first bad input line instead of skipping it.", rich_help_panel=INPUT
    ),
    output: Path | None = output_option("Write JSON lines here (default: stdout)."),
    overwrite: bool = overwrite_option(),
    task: list[str] | None = typer.Option(
        None, "--task", metavar="TASK", help="Only these tasks (repeatable).", rich_help_panel=MODEL_PANEL
    ),
    model: str | None = model_option("the bundles name"),
    batch_size: int = typer.Option(32, min=1, help="Inputs per forward pass.", rich_help_panel=RUN_PANEL),
    device: str = device_option(),
) -> None:
    """Predict with every loaded task (or --task) and write one JSON line per input."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from maskctl.serving.inputs import PredictionInputs
    from maskctl.serving.model import MaskedModel
    from maskctl.serving.stream import write_predictions

    inputs = PredictionInputs.read(input_file, text, text_pair, text_column, output, overwrite)  # before the model
    served = MaskedModel.from_bundles(bundles, model=model, device=device)
    if not err_console.is_terminal:  # a log gets the predictions and the skipped lines, nothing else
        _report_skipped(write_predictions(served, inputs, task, output, sys.stdout, batch_size, strict))
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.completed} lines"), console=err_console, transient=True
    ) as progress:
        bar = progress.add_task("predict", total=None)
        stats = write_predictions(
            served,
            inputs,
            task,
            output,
            sys.stdout,
            batch_size,
            strict,
            progress=lambda lines: progress.update(bar, completed=lines),
        )
    _report_skipped(stats)


def _report_skipped(stats) -> None:
    """The skipped lines on stderr: the first few one by one, the rest counted."""
    for problem in stats.problems[:SHOWN_PROBLEMS]:
        err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    if len(stats.problems) > SHOWN_PROBLEMS:
        err_console.print(
            f"[yellow]skipped[/] ... and {len(stats.problems) - SHOWN_PROBLEMS} more lines", highlight=False
        )
    if stats.skipped:
        err_console.print(f"{stats.skipped} of {stats.lines} input lines skipped", highlight=False)
