"""``maskctl analyze connect``: the task metric along finetuned <-> masked lines (paper Fig. 6)."""

from __future__ import annotations

from pathlib import Path

import typer

from maskctl.cli.common import (
    Split,
    data_dir_option,
    device_option,
    model_option,
    output_option,
    split_option,
    split_value,
)
from maskctl.cli.console import console, titled_table
from maskctl.cli.progress import work


def connect(
    mask: str = typer.Option(..., "--mask", help="The task's *.bundle or hf://user/name (the masked endpoint)."),
    finetuned: Path = typer.Option(..., "--finetuned", help="Folder of maskctl train --method finetune, same task."),
    out: Path = output_option("Folder for connect.csv/md/json and connect.png.", required=True, aliases=("--out",)),
    points: int = typer.Option(11, help="Evenly spaced alphas per line, endpoints included."),
    split: Split = split_option("dev"),
    model: str | None = model_option(),
    data_dir: str | None = data_dir_option(),
    device: str = device_option(),
    batch_size: int | None = typer.Option(None, help="Evaluation batch size (default: the bundle's)."),
) -> None:
    """Score W(a) = W_finetuned + a (W_masked - W_finetuned) and the lines from the pretrained model."""
    split = split_value(split)
    from maskctl.analysis.connect import LINES, mode_connectivity

    with work(console, "scoring W(α)", len(LINES) * points, "points") as advance:

        def report(line: str, alpha: float, metrics: dict[str, float]) -> None:
            console.print(f"{line} α={alpha:.2f}: {metrics['score']:.4f}", highlight=False)
            advance(1)

        result = mode_connectivity(
            mask,
            finetuned,
            points=points,
            split=split,
            out_dir=out,
            model=model,
            data_dir=data_dir,
            device=device,
            batch_size=batch_size,
            on_point=report,
            on_batch=lambda n: advance(0),
        )  # a long evaluation still gets its heartbeat
    table = titled_table(f"{result.task}: {split} {result.metric} along each line")
    table.add_column("α", justify="right")
    lines = list(dict.fromkeys(row["line"] for row in result.rows))
    for line in lines:
        table.add_column(line, justify="right")
    for alpha in dict.fromkeys(row["alpha"] for row in result.rows):
        table.add_row(f"{alpha:.2f}", *(f"{result.score(line, alpha):.4f}" for line in lines))
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(
        f"wrote {len(result.files)} files to {out} in {result.seconds:.0f} s", highlight=False, soft_wrap=True
    )
