"""``maskctl eval``: score a bundle on a split of its task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from maskctl.cli.console import console, metrics_table


def eval_bundle(
    bundle: str = typer.Argument(..., help="The *.bundle to evaluate (or hf://user/name, "
                                           "hf://user/name/FILE.bundle@REVISION)."),
    split: Optional[str] = typer.Option(None, help="dev (or validation), test or train [default: dev]."),
    file: Optional[str] = typer.Option(None, "--file", help="Score on this csv, tsv, json, jsonl or parquet file "
                                       "(the task's column names) instead of a split."),
    model: Optional[str] = typer.Option(None, help="Base model (default: the one the bundle names)."),
    data_dir: Optional[str] = typer.Option(None, help="Folder with the task's data files."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics as JSON here."),
) -> None:
    """Evaluate a mask bundle on its task, on the base model it was trained on."""
    from maskctl.io import atomic_write_text
    from maskctl.serving.loading import evaluate_bundle

    from maskctl.errors import MaskctlError

    if split and file:
        raise MaskctlError("give --split or --file, not both", "--file scores one file instead of a split")
    result = evaluate_bundle(bundle, split="test" if file else split or "dev", model=model, data_dir=data_dir,
                             device=device, file=file)
    shown = Path(file).name if file else result.split
    console.print(metrics_table(f"{result.task}: {bundle}", {shown: result.metrics}))
    if result.split == "dev" and not file and result.trained_dev is not None:
        same = result.trained_dev.get("score") == result.metrics["score"]
        note = "matches" if same else "differs from"
        console.print(f"{note} the dev score recorded at training time ({result.trained_dev['score']:.4f})",
                      highlight=False)
    if json_out:
        payload = {"bundle": str(bundle), "task": result.task, "split": None if file else result.split,
                   **({"file": str(file)} if file else {}), "metrics": result.metrics}
        atomic_write_text(json_out, json.dumps(payload, indent=2) + "\n")
