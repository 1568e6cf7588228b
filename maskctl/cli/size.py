"""``maskctl size``: memory of N tasks, finetuning vs masking (the paper's Figure 3 / Table 8)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from maskctl.cli.common import json_option, overwrite_option
from maskctl.cli.console import console, titled_table


def size(
    paths: list[Path] | None = typer.Argument(
        None, help="More bundles, so that `--bundles masks/*.bundle` works after shell expansion.", show_default=False
    ),
    tasks: int = typer.Option(11, help="Number of tasks (rows 1..N). With --bundles: one row per bundle."),
    model: str | None = typer.Option(
        None, help="Hub id, local folder or minilm (default: bert-base-uncased, or the base the bundles name)."
    ),
    ensemble: int | None = typer.Option(None, help="Also size a K-member ensemble of one task."),
    bundles: list[Path] | None = typer.Option(
        None, "--bundles", help="Count these real *.bundle files instead of the formula."
    ),
    num_labels: int = typer.Option(2, help="Labels of each task's classifier (the head stored per task)."),
    mask_blocks: str | None = typer.Option(
        None, help="Blocks counted as masked: 2-11, all, top:K, bottom:K (default: all but the lowest two)."
    ),
    plot: Path | None = typer.Option(None, help="Write the cumulative-memory plot (PNG) here."),
    overwrite: bool = overwrite_option("an existing --plot file"),
    as_json: bool = json_option("Print machine-readable JSON instead of tables."),
) -> None:
    """Cumulative parameters and memory (MB = 10^6 bytes) of finetuning vs masking as tasks grow.

    Counted from the model's config on the meta device: nothing is downloaded. Finetuning keeps
    one fp32 model per task; masking one fp32 base plus, per task, 1 bit per masked weight and
    the classifier's floats. bert-base-uncased, roberta-base and distilbert-base-uncased work offline.
    """
    from maskctl.experiments.sizing import size_tasks

    report = size_tasks(
        [*(bundles or []), *(paths or [])], tasks, model, num_labels, mask_blocks, ensemble, plot, overwrite
    )
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    _print_report(report)


def _print_report(report) -> None:
    """The model line, the tables (cumulative rows, ensemble, bundles) and the convention."""
    count, rows, members, sized = report.count, report.rows, report.ensemble, report.bundles
    console.print(
        f"[bold]{count.model}[/] ({count.model_type}, {count.n_blocks} blocks, {count.num_labels} labels; "
        f"{count.config_from})",
        highlight=False,
    )
    what = "real bundle files" if sized else "formula"
    console.print(_rows_table(f"cumulative size for 1..{len(rows)} tasks ({what} for masking)", "tasks", rows))
    if members is not None:
        console.print(_rows_table(f"{members.copies}-member ensemble of one task", "members", [members]))
    if sized:
        console.print(_bundles_table(sized))
    console.print(f"counted: {count.describe()}", highlight=False)
    if sized:
        console.print(
            "masking with --bundles: the shared base from the formula + whole bundle files "
            "(masks as stored, head, metadata, header); finetuning from the formula.",
            highlight=False,
        )
    if report.plot is not None:
        console.print(f"wrote {report.plot}", highlight=False)


def _rows_table(title: str, unit: str, rows) -> Table:
    from maskctl.experiments.sizing import MB

    table = titled_table(title)
    table.add_column(unit, justify="right")
    for column in (
        "finetune params (M)",
        "finetune MB",
        "masking fp32 params (M)",
        "masking 1-bit params (M)",
        "masking MB",
        "finetune / masking",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row.copies),
            _num(row.finetune_params / 1e6),
            _num(row.finetune_bytes / MB),
            _num(row.masking_float_params / 1e6),
            _num(row.masking_mask_bits / 1e6),
            _num(row.masking_bytes / MB),
            f"{row.ratio:.2f}x",
        )
    return table


def _num(value: float) -> str:
    """One decimal for paper-sized models; four significant digits for tiny ones."""
    return f"{value:,.1f}" if value >= 10 else f"{value:.4g}"


def _bundles_table(bundles) -> Table:
    table = titled_table("bundles on disk")
    for column in ("bundle", "task", "labels", "bytes", "masked weights", "bits per masked weight"):
        table.add_column(column, justify="left" if column in ("bundle", "task") else "right")
    for b in bundles:
        table.add_row(
            b.path, b.task, str(b.num_labels), f"{b.file_bytes:,}", f"{b.masked_weights:,}", f"{b.bits_per_weight:.3f}"
        )
    return table
