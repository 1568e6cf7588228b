"""Stream inputs through a ``MaskedModel``: JSON lines or plain text in, JSON lines out.

An input line is a JSON object (``{"text": ...}``, ``{"text": ..., "text_pair": ...}``,
``{"tokens": [...]}``, ``{"context": ..., "endings": [...]}``, or the task card's own column
names) or, if it does not start with ``{``, plain text. ``predict_rows`` takes rows already
read (a CSV, TSV, JSON or parquet file through ``tasks.readers.datafiles``). Lines are read and predicted in chunks, never all held in memory. A line
that is broken JSON, or that no loaded task can use, is reported with its line number and
skipped (or stops the run with ``strict``). ``write_predictions`` is ``maskctl predict``: the
inputs ``serving.inputs`` read, predicted and written as JSON lines.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from maskctl.errors import MaskctlError
from maskctl.io import atomic_path
from maskctl.serving.inputs import PredictionInputs, no_input
from maskctl.serving.model import MaskedModel
from maskctl.serving.results import RequestError

CHUNK = 256  # lines predicted together


@dataclass
class StreamStats:
    lines: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)  # "line N: what is wrong — the fix"


def parse_line(text: str) -> Any:
    """The input object of one line; ``ValueError`` for broken JSON."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return stripped
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from exc


def predict_lines(
    model: MaskedModel,
    lines: Iterable[str],
    tasks: list[str] | None = None,
    batch_size: int = 32,
    strict: bool = False,
    stats: StreamStats | None = None,
) -> Iterator[dict[str, Any]]:
    """One output row per usable input line: ``{"line", "input", "predictions": {task: ...}}``."""
    stats = stats if stats is not None else StreamStats()

    def parsed() -> Iterator[tuple[int, Any]]:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                yield number, parse_line(text)
            except ValueError as exc:
                stats.lines += 1
                _problem(stats, strict, number, str(exc), 'write one JSON object per line, e.g. {"text": "..."}')

    return predict_rows(model, parsed(), tasks, batch_size, strict, stats)


def predict_rows(
    model: MaskedModel,
    rows: Iterable[tuple[int, Any]],
    tasks: list[str] | None = None,
    batch_size: int = 32,
    strict: bool = False,
    stats: StreamStats | None = None,
) -> Iterator[dict[str, Any]]:
    """The same for rows already read (``(line, input)``, e.g. the rows of a CSV or parquet file,
    whose columns may carry the task card's own names)."""
    tasks = tasks or model.tasks
    for name in tasks:
        model.task(name)  # unknown task names fail before any work
    stats = stats if stats is not None else StreamStats()
    chunk: list[tuple[int, Any]] = []
    for number, item in rows:
        stats.lines += 1
        chunk.append((number, item))
        if len(chunk) >= CHUNK:
            yield from _predict_chunk(model, chunk, tasks, batch_size, strict, stats)
            chunk = []
    if chunk:
        yield from _predict_chunk(model, chunk, tasks, batch_size, strict, stats)


def _predict_chunk(model, chunk, tasks, batch_size, strict, stats) -> Iterator[dict[str, Any]]:
    """Every line with every loaded task that can use it, in mixed-task batches."""
    requests, owners = [], []
    for position, (_, item) in enumerate(chunk):
        for name in tasks:
            requests.append((name, item))
            owners.append(position)
    results: dict[int, dict[str, Any]] = {}
    reasons: dict[int, list[str]] = {}
    for position, (name, _), result in zip(owners, requests, model.predict_many(requests, batch_size=batch_size)):
        if isinstance(result, RequestError):
            reasons.setdefault(position, []).append(result.message)
        else:
            results.setdefault(position, {})[name] = dataclasses.asdict(result)
    for position, (number, item) in enumerate(chunk):
        if position not in results:
            _problem(
                stats,
                strict,
                number,
                "; ".join(reasons.get(position, ["no task can use it"])),
                'give the fields a loaded task needs: "text", "tokens" or "context" + "endings"',
            )
            continue
        yield {"line": number, "input": item, "predictions": results[position]}


def _problem(stats: StreamStats, strict: bool, number: int, what: str, fix: str) -> None:
    if strict:
        raise MaskctlError(f"input line {number}: {what}", f"{fix} (or drop --strict to skip such lines)")
    stats.skipped += 1
    stats.problems.append(f"line {number}: {what} — {fix}")


def predict_inputs(
    model: MaskedModel,
    inputs: PredictionInputs,
    tasks: list[str] | None = None,
    batch_size: int = 32,
    strict: bool = False,
    stats: StreamStats | None = None,
) -> Iterator[dict[str, Any]]:
    """``predict_rows`` over a table file's rows, ``predict_lines`` over any other input (a
    file opened here is closed when the rows run out or the caller stops)."""
    if inputs.table is not None:
        yield from predict_rows(model, inputs.rows(), tasks, batch_size, strict, stats)
        return
    with inputs.lines() as lines:
        yield from predict_lines(model, lines, tasks, batch_size, strict, stats)


def write_predictions(
    model: MaskedModel,
    inputs: PredictionInputs,
    tasks: list[str] | None = None,
    output: Path | None = None,
    stream: TextIO | None = None,
    batch_size: int = 32,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> StreamStats:
    """One JSON line per usable input, into ``output`` (atomically: renamed into place only
    when the run succeeds) or ``stream``; ``progress(lines read)`` after each. Returns what was
    read and skipped. A run that skips every input fails before anything is renamed into place."""
    stats = StreamStats()
    rows = predict_inputs(model, inputs, tasks, batch_size, strict, stats)

    def write(out: TextIO) -> None:
        for row in rows:
            out.write(json.dumps(row) + "\n")
            if progress is not None:
                progress(stats.lines)
        refuse_all_skipped(stats, inputs.columns, inputs.source)

    if output is not None:
        with atomic_path(output) as tmp, tmp.open("w", encoding="utf-8") as out:
            write(out)
    else:
        if stream is None:
            raise ValueError("write_predictions needs an output path or a stream")
        write(stream)
    return stats


def refuse_all_skipped(stats: StreamStats, columns: list[str] | None = None, source: str | None = None) -> None:
    """Every input skipped is a mistake (a wrong column, a wrong task), not a result: a
    ``MaskctlError`` naming the first problem (and a table file's ``columns``); so is input with
    no line at all (stdin, whose emptiness shows only once it is read)."""
    if not stats.lines and source is not None:
        raise no_input(source)
    if stats.lines and stats.skipped == stats.lines:
        shown = f"; the file's columns: {', '.join(columns)}" if columns is not None else ""
        first = stats.problems[0] if stats.problems else "no task could use them"
        raise MaskctlError(
            f"all {stats.lines} input lines were skipped ({first}){shown}",
            "name the text column with --text-column"
            if columns is not None
            else 'give each line the fields a loaded task needs: "text", "tokens" or "context" + "endings"',
        )
