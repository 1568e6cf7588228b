"""``maskctl analyze tsne``: [CLS] t-SNE under the pretrained, masked and finetuned models (Fig. 4)."""

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
from maskctl.cli.console import console, titled_table, train_progress


def tsne(
    mask: str = typer.Option(..., "--mask", help="A sequence-classification *.bundle (or hf://user/name)."),
    out: Path = output_option("Folder for tsne*.csv/md/json and tsne.png.", required=True, aliases=("--out",)),
    finetuned: Path | None = typer.Option(None, "--finetuned", help="Also a finetuned folder of the same task."),
    split: Split = split_option("dev"),
    max_examples: int = typer.Option(1000, help="The split's first N examples (t-SNE is quadratic)."),
    seed: int = typer.Option(0, help="t-SNE random state."),
    model: str | None = model_option(),
    data_dir: str | None = data_dir_option(),
    device: str = device_option(),
    batch_size: int | None = typer.Option(None, help="Batch size (default: the bundle's eval batch size)."),
) -> None:
    """t-SNE of the last layer's [CLS] vectors, coloured by label, one panel per model."""
    split = split_value(split)
    from maskctl.analysis.tsne import tsne_representations

    progress = train_progress()
    try:
        result = tsne_representations(
            mask,
            finetuned,
            split=split,
            max_examples=max_examples,
            out_dir=out,
            model=model,
            data_dir=data_dir,
            device=device,
            batch_size=batch_size,
            seed=seed,
            callback=progress,
        )
    finally:
        progress.close()
    table = titled_table(f"{result.task}: [CLS] clustering by label on {split}")
    for column in ("model", "examples", "silhouette (cosine, [CLS])", "silhouette (t-SNE)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in result.rows:
        table.add_row(
            row["model"],
            str(row["examples"]),
            *("" if row[k] is None else f"{row[k]:.3f}" for k in ("silhouette_cls", "silhouette_tsne")),
        )
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"wrote {len(result.files)} files to {out}", highlight=False, soft_wrap=True)
