"""``maskctl export``: write a bundle as a plain Hugging Face model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from maskctl.cli.console import console


def export(
    bundle: str = typer.Argument(..., help="The *.bundle to export (or hf://user/name, "
                                           "hf://user/name/FILE.bundle@REVISION)."),
    output: Path = typer.Option(..., help="Folder to write (save_pretrained layout)."),
    fmt: str = typer.Option("hf", "--format", help="Output format: hf."),
    model: Optional[str] = typer.Option(None, help="Base model (default: the one the bundle names)."),
    overwrite: bool = typer.Option(False, help="Replace an existing folder."),
) -> None:
    """Merge a bundle's masks into its base model and save a plain Hugging Face model."""
    from maskctl.serving.export import export_bundle

    path = export_bundle(bundle, output, model=model, fmt=fmt, overwrite=overwrite)
    console.print(f"wrote {path}: load it with transformers' AutoModelFor...from_pretrained({str(path)!r})",
                  highlight=False)
