"""``maskctl ensemble``: vote several masks of one task on one resident base model."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from maskctl.choices import VOTE_RULES as RULES
from maskctl.cli.common import (
    Split,
    data_dir_option,
    device_option,
    model_option,
    output_option,
    overwrite_option,
    split_option,
    split_value,
)
from maskctl.cli.console import console, titled_table
from maskctl.cli.progress import work

Vote = enum.Enum("Vote", {rule: rule for rule in (*RULES, "best")}, type=str)


def ensemble(
    bundles: list[str] = typer.Argument(
        ..., help="Two or more *.bundle files (or hf://user/name) of the same task and base model."
    ),
    by: Vote = typer.Option(
        Vote.best, help="Vote by label, logit or prob; best picks the rule with the best dev score."
    ),
    split: Split = split_option("dev"),
    model: str | None = model_option("the bundles name"),
    data_dir: str | None = data_dir_option(),
    device: str = device_option(),
    predictions: Path | None = output_option("Write one JSON line per example here.", aliases=("--predictions",)),
    overwrite: bool = overwrite_option(),
) -> None:
    """Score each member and the ensemble's votes on one split, with one base model in memory."""
    from maskctl.experiments.ensemble import run_ensemble
    from maskctl.io import refuse_existing

    if predictions:
        refuse_existing(predictions, overwrite)

    by, split = by.value, split_value(split)
    with work(console, "scoring members", len(bundles), "members") as advance:
        result = run_ensemble(
            bundles,
            by=by,
            split=split,
            model=model,
            data_dir=data_dir,
            device=device,
            predictions=predictions,
            on_member=lambda path: advance(1),
            on_batch=lambda n: advance(0),
        )  # a member's long pass still gets its heartbeat
    table = titled_table(f"{result.task}: {len(result.members)} members on {split}")
    table.add_column("member / vote")
    table.add_column("score", justify="right")
    table.add_column("accuracy", justify="right")
    if result.dev_scores:
        table.add_column("dev score", justify="right")
    for path, metrics in result.members:
        table.add_row(
            str(path), f"{metrics['score']:.4f}", f"{metrics['accuracy']:.4f}", *([""] if result.dev_scores else [])
        )
    for rule in RULES:
        mark = " (chosen)" if rule == result.chosen else ""
        metrics = result.rules[rule]
        table.add_row(
            f"vote by {rule}{mark}",
            f"{metrics['score']:.4f}",
            f"{metrics['accuracy']:.4f}",
            *([f"{result.dev_scores[rule]:.4f}"] if result.dev_scores else []),
        )
    console.print(table)
    console.print(
        f"ensemble ({result.chosen}) {split} score: {result.rules[result.chosen]['score']:.4f}", highlight=False
    )
    if predictions:
        console.print(f"wrote {predictions}", highlight=False)
