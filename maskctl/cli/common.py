"""Options many commands share, declared once: the same name, help, choices and panel in every
``--help`` (``maskctl train`` and ``serve`` generate theirs from their settings dataclasses).

Each function returns a fresh ``typer.Option`` for a command's signature, e.g.
``device: str = device_option()``.
"""

from __future__ import annotations

import enum
from typing import Any

import typer

from maskctl.choices import DEVICE_HELP, DEVICE_METAVAR

MODEL_PANEL, OUTPUT_PANEL, RUN_PANEL = "Model and data", "Output", "Hardware"
BUNDLE_HELP = "A *.bundle file, or hf://user/name(/file.bundle)(@revision) on the Hugging Face Hub."


class Split(str, enum.Enum):
    """The splits a task has; ``validation`` (the Hub's name) means dev."""

    dev = "dev"
    validation = "validation"
    test = "test"
    train = "train"


def split_option(default: str | None = "dev", help: str = "The split to score.") -> Any:  # noqa: A002
    return typer.Option(
        Split(default) if default else None,
        "--split",
        help=help.rstrip(".") + " (validation means dev).",
        metavar="<dev|test|train>",
    )


def device_option() -> Any:
    return typer.Option("auto", "--device", help=DEVICE_HELP, metavar=DEVICE_METAVAR, rich_help_panel=RUN_PANEL)


def model_option(what: str = "the bundle names") -> Any:
    return typer.Option(
        None,
        "--model",
        help=f"Base model: hub id or local folder (default: the one {what}).",
        rich_help_panel=MODEL_PANEL,
    )


def output_option(help: str, required: bool = False, aliases: tuple[str, ...] = ()) -> Any:  # noqa: A002
    """``--output`` / ``-o`` on every command that writes something; ``aliases`` keep the names
    older versions used (``--out``, ``--json FILE``, ``--predictions``) working."""
    return typer.Option(... if required else None, "--output", "-o", *aliases, help=help, rich_help_panel=OUTPUT_PANEL)


def data_dir_option() -> Any:
    return typer.Option(
        None,
        "--data-dir",
        help="Folder with the task's data files (default: where the bundle recorded them).",
        rich_help_panel=MODEL_PANEL,
    )


def overwrite_option(what: str = "an existing --output") -> Any:
    """A plain ``--overwrite`` flag (no ``--no-overwrite`` twin)."""
    return typer.Option(False, "--overwrite", help=f"Replace {what}.", rich_help_panel=OUTPUT_PANEL)


def json_option(help: str = "Print machine-readable JSON.") -> Any:  # noqa: A002
    return typer.Option(False, "--json", help=help, rich_help_panel=OUTPUT_PANEL)


# -- recipes and sweeps: maskctl train and the analyses that train (analyze sparsity / layers) ----------------


def overrides_argument(example: str = "lr=3e-3") -> Any:
    return typer.Argument(None, help=f"key=value overrides of the recipe, e.g. {example}.")


def recipe_option(what: str = "giving the training settings", panel: str | None = None) -> Any:
    return typer.Option(None, help=f"YAML recipe (path or shipped name) {what}.", rich_help_panel=panel)


def sweep_option(what: str, panel: str | None = None) -> Any:
    """``--sweep key=v1,v2``: ``what`` says where a command's runs and their best go."""
    return typer.Option(
        None,
        help=f"Train a grid, key=v1,v2,... (repeatable, at most two keys; replaces the recipe's sweep); {what}.",
        rich_help_panel=panel,
    )


def sweep_extend_option(panel: str | None = None) -> Any:
    return typer.Option(
        None,
        min=0,
        help="Points a one-key lr sweep may add beyond the edge holding the best (x3 "
        "or /3 each; default: the recipe's, else 3; 0: never).",
        rich_help_panel=panel,
    )


def split_value(split: Split | str | None) -> str | None:
    return split.value if isinstance(split, enum.Enum) else split
