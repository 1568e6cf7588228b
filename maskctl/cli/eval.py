"""``maskctl eval``: score a bundle on a split of its task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from maskctl.cli.console import console, metrics_table


def eval_bundle(
    bundle: Path = typer.Argument(..., help="The *.bundle to evaluate."),
    split: str = typer.Option("dev", help="dev or test (or train)."),
    model: Optional[str] = typer.Option(None, help="Base model (default: the one the bundle names)."),
    data_dir: Optional[str] = typer.Option(None, help="Folder with the task's data files."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics as JSON here."),
) -> None:
    """Evaluate a mask bundle on its task, on the base model it was trained on."""
    from maskctl.io import atomic_write_text
    from maskctl.serving.loading import evaluate_bundle

    result = evaluate_bundle(bundle, split=split, model=model, data_dir=data_dir, device=device)
    console.print(metrics_table(f"{result.task}: {bundle}", {split: result.metrics}))
    if split == "dev" and result.trained_dev is not None:
        same = result.trained_dev.get("score") == result.metrics["score"]
        note = "matches" if same else "differs from"
        console.print(f"{note} the dev score recorded at training time ({result.trained_dev['score']:.4f})",
                      highlight=False)
    if json_out:
        payload = {"bundle": str(bundle), "task": result.task, "split": split, "metrics": result.metrics}
        atomic_write_text(json_out, json.dumps(payload, indent=2) + "\n")
