"""``maskctl predict``: run new text through one or more bundles on one resident base model."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from maskctl.cli.common import (BUNDLE_HELP, MODEL_PANEL, RUN_PANEL, device_option, model_option, output_option,
                                 overwrite_option)
from maskctl.cli.console import err_console
from maskctl.choices import DATA_FILE_FORMATS as FORMATS

INPUT = "Input"
# Read as rows through datasets; JSON lines and plain text are streamed line by line instead.
TABLE_FORMATS = tuple(ext for ext in FORMATS if ext != ".jsonl")
SHOWN_PROBLEMS = 5  # skipped lines named one by one; the rest counted


def predict(
    bundles: list[str] = typer.Argument(..., help="One bundle per task, all of one base model: " + BUNDLE_HELP,
                                        show_default=False),
    input_file: Optional[str] = typer.Option(
        None, "--input", metavar="FILE", help="A csv, tsv, json or parquet file (columns named as in the task's data, or text, "
        "tokens, ...), JSON lines (.jsonl) or plain text lines; - for stdin.", rich_help_panel=INPUT),
    text: Optional[list[str]] = typer.Option(None, "--text", metavar="TEXT", help="Text to predict (repeatable).",
                                             rich_help_panel=INPUT),
    text_pair: Optional[list[str]] = typer.Option(None, "--text-pair", metavar="TEXT", help="Second text of a pair, one per --text "
                                                  "(sentence-pair tasks).", rich_help_panel=INPUT),
    text_column: Optional[list[str]] = typer.Option(None, "--text-column", metavar="COLUMN", help="The --input "
                                                    "column with the text (twice: text and text_pair), if not text.",
                                                    rich_help_panel=INPUT),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad input line instead of skipping it.",
                                rich_help_panel=INPUT),
    output: Optional[Path] = output_option("Write JSON lines here (default: stdout)."),
    overwrite: bool = overwrite_option(),
    task: Optional[list[str]] = typer.Option(None, "--task", metavar="TASK", help="Only these tasks (repeatable).",
                                             rich_help_panel=MODEL_PANEL),
    model: Optional[str] = model_option("the bundles name"),
    batch_size: int = typer.Option(32, min=1, help="Inputs per forward pass.", rich_help_panel=RUN_PANEL),
    device: str = device_option(),
) -> None:
    """Predict with every loaded task (or --task) and write one JSON line per input."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from maskctl.errors import MaskctlError
    from maskctl.io import atomic_path, refuse_existing
    from maskctl.serving.model import MaskedModel
    from maskctl.serving.stream import StreamStats, predict_lines, predict_rows
    from maskctl.tasks.readers.datafiles import load_file

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
    if text_column:
        data = _renamed(data, text_column)
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
                    _refuse_all_skipped(stats, data)  # before the rename: no empty output left behind
            else:
                for row in rows:
                    sys.stdout.write(json.dumps(row) + "\n")
                    progress.update(bar, completed=stats.lines)
                _refuse_all_skipped(stats, data)
    finally:
        if handle:
            handle.close()
    for problem in stats.problems[:SHOWN_PROBLEMS]:
        err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    if len(stats.problems) > SHOWN_PROBLEMS:
        err_console.print(f"[yellow]skipped[/] ... and {len(stats.problems) - SHOWN_PROBLEMS} more lines",
                          highlight=False)
    if stats.skipped:
        err_console.print(f"{stats.skipped} of {stats.lines} input lines skipped", highlight=False)


def _renamed(data, text_column: list[str]):
    """``data``'s rows with ``text_column`` (one or two names) read as ``text`` / ``text_pair``."""
    from maskctl.errors import MaskctlError

    if data is None:
        raise MaskctlError("--text-column names a column of a csv, tsv, json or parquet --input",
                           "JSON lines and plain text carry their own field names")
    if len(text_column) > 2:
        raise MaskctlError(f"{len(text_column)} --text-column given", "give one, or two for a sentence pair")
    missing = [c for c in text_column if c not in data.columns]
    if missing:
        raise MaskctlError(f"{data.path.name} has no column {missing[0]!r}; its columns: {', '.join(data.columns)}",
                           "name one of them with --text-column")
    roles = dict(zip(("text", "text_pair"), text_column))
    rows = [{**{k: v for k, v in row.items() if k not in roles}, **{r: row[c] for r, c in roles.items()}}
            for row in data.rows]
    return dataclasses.replace(data, rows=rows)


def _refuse_all_skipped(stats, data) -> None:
    """Every input skipped is a mistake (a wrong column, a wrong task), not a result: exit 2."""
    from maskctl.errors import MaskctlError

    if stats.lines and stats.skipped == stats.lines:
        columns = f"; the file's columns: {', '.join(data.columns)}" if data is not None else ""
        first = stats.problems[0] if stats.problems else "no task could use them"
        raise MaskctlError(f"all {stats.lines} input lines were skipped ({first}){columns}",
                           "name the text column with --text-column" if data is not None else
                           'give each line the fields a loaded task needs: "text", "tokens" or "context" + "endings"')
