"""``maskctl export``: write a bundle as a plain Hugging Face model folder."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from maskctl.choices import EXPORT_FORMATS as FORMATS
from maskctl.cli.common import BUNDLE_HELP, model_option, output_option, overwrite_option
from maskctl.cli.console import console

Format = enum.Enum("Format", {name: name for name in FORMATS}, type=str)


def export(
    bundle: str = typer.Argument(..., help=BUNDLE_HELP, show_default=False),
    output: Path = output_option("Folder to write (save_pretrained layout, with a model card).", required=True),
    fmt: Format = typer.Option(FORMATS[0], "--format", help="Output format."),
    model: str | None = model_option(),
    overwrite: bool = overwrite_option("an existing folder"),
) -> None:
    """Merge a bundle's masks into its base model and save a plain Hugging Face model."""
    from maskctl.experiments.export import export_bundle, exported_auto_class

    path = export_bundle(bundle, output, model=model, fmt=fmt.value, overwrite=overwrite)
    console.print(
        f"wrote {path}: load it with transformers' {exported_auto_class(path)}.from_pretrained({str(path)!r})",
        highlight=False,
    )
