"""``maskctl predict``: run new text through one or more bundles on one resident base model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from maskctl.cli.console import err_console

TABLE_FORMATS = (".csv", ".tsv", ".json", ".parquet")  # read as rows; .jsonl and text are streamed by line


def predict(
    bundles: list[str] = typer.Argument(..., help="One *.bundle (or hf://user/name) per task, all of one base model."),
    input_file: Optional[str] = typer.Option(
        None, "--input", help="A csv, tsv, json or parquet file (columns named as in the task's data, or text, "
        "tokens, ...), JSON lines (.jsonl) or plain text lines; - for stdin."),
    text: Optional[list[str]] = typer.Option(None, "--text", help="Text to predict (repeatable)."),
    text_pair: Optional[list[str]] = typer.Option(None, "--text-pair", help="Second text of a pair, one per --text "
                                                  "(sentence-pair tasks)."),
    output: Optional[Path] = typer.Option(None, help="Write JSON lines here (default: stdout)."),
    task: Optional[list[str]] = typer.Option(None, "--task", help="Only these tasks (repeatable)."),
    batch_size: int = typer.Option(32, help="Inputs per forward pass."),
    strict: bool = typer.Option(False, help="Stop at the first bad input line instead of skipping it."),
    model: Optional[str] = typer.Option(None, help="Base model (default: the one the bundles name)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    overwrite: bool = typer.Option(False, help="Replace an existing --output."),
) -> None:
    """Predict with every loaded task (or --task) and write one JSON line per input."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from maskctl.errors import MaskctlError
    from maskctl.io import atomic_path, refuse_existing
    from maskctl.serving.stream import StreamStats, predict_lines, predict_rows
    from maskctl.tasks.readers.datafiles import load_file
    from maskctl.serving.model import MaskedModel

    if (input_file is None) == (not text):
        raise MaskctlError("give either --input FILE (or - for stdin) or --text", "e.g. --text 'Shares fell'")
    if text_pair and len(text_pair) != len(text or []):
        raise MaskctlError(f"{len(text_pair)} --text-pair for {len(text or [])} --text",
                           "give one --text-pair after each --text")
    if output:
        refuse_existing(output, overwrite)
    if input_file not in (None, "-") and not Path(input_file).is_file():
        raise MaskctlError(f"input file {input_file} does not exist", "check the path, or pass - for stdin")
    table = input_file not in (None, "-") and Path(input_file).suffix.lower() in TABLE_FORMATS
    data = load_file(input_file) if table else None  # read (and checked) before the model loads
    served = MaskedModel.from_bundles(bundles, model=model, device=device)
    stats = StreamStats()
    handle = None
    if input_file == "-":
        lines = sys.stdin
    elif input_file and not table:
        handle = open(input_file, encoding="utf-8-sig")  # noqa: SIM115 - streamed, closed below
        lines = handle
    else:
        lines = [json.dumps({"text": t, **({"text_pair": p} if p is not None else {})})
                 for t, p in zip(text or [], text_pair or [None] * len(text or []))]
    try:
        rows = (predict_rows(served, ((data.line(i), row) for i, row in enumerate(data.rows)), task,
                             batch_size=batch_size, strict=strict, stats=stats) if data else
                predict_lines(served, lines, task, batch_size=batch_size, strict=strict, stats=stats))
        with Progress(SpinnerColumn(), TextColumn("{task.completed} lines"), console=err_console,
                      transient=True) as progress:
            bar = progress.add_task("predict", total=None)
            if output:
                with atomic_path(output) as tmp, tmp.open("w", encoding="utf-8") as out:
                    for row in rows:
                        out.write(json.dumps(row) + "\n")
                        progress.update(bar, completed=stats.lines)
            else:
                for row in rows:
                    sys.stdout.write(json.dumps(row) + "\n")
                    progress.update(bar, completed=stats.lines)
    finally:
        if handle:
            handle.close()
    for problem in stats.problems:
        err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    if stats.skipped:
        err_console.print(f"{stats.skipped} of {stats.lines} input lines skipped", highlight=False)
