"""``maskctl eval``: score a bundle on a split of its task."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from maskctl.cli.common import (
    BUNDLE_HELP,
    Split,
    data_dir_option,
    device_option,
    model_option,
    output_option,
    overwrite_option,
    split_option,
    split_value,
)
from maskctl.cli.console import console, metrics_table, train_progress


def eval_bundle(
    bundle: str = typer.Argument(..., help=BUNDLE_HELP, show_default=False),
    split: Split | None = split_option(None, "The split to score, by default dev"),
    file: str | None = typer.Option(
        None,
        "--file",
        metavar="FILE",
        help="Score on this csv, tsv, json, jsonl or parquet file (the task's column names) instead of a split.",
    ),
    text_column: list[str] | None = typer.Option(
        None,
        "--text-column",
        metavar="COLUMN",
        help="The --file column with the text (twice for a sentence pair), if not the task's own name.",
    ),
    label_column: str | None = typer.Option(
        None,
        "--label-column",
        metavar="COLUMN",
        help="The --file column with the label (tags), if not the task's own name.",
    ),
    model: str | None = model_option(),
    data_dir: str | None = data_dir_option(),
    device: str = device_option(),
    json_out: Path | None = output_option("Also write the metrics as JSON here.", aliases=("--json",)),
    overwrite: bool = overwrite_option(),
) -> None:
    """Evaluate a mask bundle on its task, on the base model it was trained on."""
    from maskctl.errors import MaskctlError
    from maskctl.experiments.evaluate import evaluate_bundle
    from maskctl.io import atomic_write_text, refuse_existing

    if split and file:
        raise MaskctlError("give --split or --file, not both", "--file scores one file instead of a split")
    if json_out:
        refuse_existing(json_out, overwrite)
    split = split_value(split)
    progress = train_progress()
    try:
        result = evaluate_bundle(
            bundle,
            split="test" if file else split or "dev",
            model=model,
            data_dir=data_dir,
            device=device,
            file=file,
            text_columns=tuple(text_column or ()),
            label_column=label_column,
            callback=progress,
        )
    finally:
        progress.close()
    shown = Path(file).name if file else result.split
    console.print(metrics_table(f"{result.task}: {bundle}", {shown: result.metrics}))
    if result.split == "dev" and not file and result.trained_dev is not None:
        same = result.trained_dev.get("score") == result.metrics["score"]
        note = "matches" if same else "differs from"
        console.print(
            f"{note} the dev score recorded at training time ({result.trained_dev['score']:.4f})", highlight=False
        )
    if json_out:
        payload = {
            "bundle": str(bundle),
            "task": result.task,
            "split": None if file else result.split,
            **({"file": str(file)} if file else {}),
            "metrics": result.metrics,
        }
        atomic_write_text(json_out, json.dumps(payload, indent=2) + "\n")
