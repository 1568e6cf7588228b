"""``maskctl inspect``: print a bundle's self-description."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from maskctl.cli.common import BUNDLE_HELP, json_option, overwrite_option
from maskctl.cli.console import console, titled_table


def inspect_bundle(
    bundle: str = typer.Argument(..., help=BUNDLE_HELP, show_default=False),
    as_json: bool = json_option("Print the raw metadata as JSON."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also draw the training loss and the dev score against the step into this PNG.",
        metavar="PNG",
    ),
    overwrite: bool = overwrite_option("an existing --plot file"),
) -> None:
    """Describe a bundle: base model, task, masked layers, sparsity, metrics, size against entropy,
    and with --plot draw how its training went."""
    from maskctl.bundle.summary import summarize_bundle

    summary = summarize_bundle(bundle)
    if plot is not None:
        from maskctl.experiments.report import plot_training_curve

        plot_training_curve(
            summary.info.curve,
            plot,
            source=bundle,
            title=summary.title,
            metric=summary.info.task.metric,
            overwrite=overwrite,
        )
    if as_json:
        console.print_json(json.dumps(summary.meta))
        return
    _print_summary(bundle, summary)
    console.print(_layers_table(summary))
    if plot is not None:
        console.print(f"wrote {plot}", highlight=False)


def _print_summary(bundle: str, summary) -> None:
    """Everything but the layer table, one fact per line."""
    info = summary.info
    base, task, mask = info.base_model, info.task, info.mask
    console.print(f"[bold]{bundle}[/] (format {info.format_version}, maskctl {info.maskctl_version})")
    console.print(
        f"base model: {base.spec} ({base.model_type}, {base.kind}"
        f" {base.location}) fingerprint {base.fingerprint[:23]}…",
        highlight=False,
    )
    if base.found_through:
        console.print(f"  found through {base.found_through}", highlight=False)
    console.print(f"task: {task.name} ({task.kind}, {task.metric}), labels: {', '.join(task.labels)}", highlight=False)
    console.print(
        f"mask: tau {mask.threshold}, initial sparsity {mask.init_sparsity}, blocks "
        f"{mask.block_ids}, head {mask.head}, seed {mask.seed}",
        highlight=False,
    )
    if info.tuned:
        console.print(
            f"also trained: {info.tuned.also_train} of the masked blocks, {len(info.tuned.tensors)} tensors "
            "stored as float16 deltas",
            highlight=False,
        )
    console.print(
        f"sparsity: {info.sparsity['init']:.4%} at init -> {info.sparsity['final']:.4%} trained", highlight=False
    )
    console.print(
        f"size: {summary.file_bytes:,} bytes for {info.masked_weights:,} masked weights = "
        f"{summary.file_bits_per_weight:.3f} bits per masked weight (whole file)",
        highlight=False,
    )
    stats = summary.stats  # parsed only now: a damaged coding entry fails after the lines above
    console.print(
        f"masks: {stats.payload_bytes:,} bytes = {stats.bits_per_weight:.3f} bits per masked weight "
        f"(mask payload); entropy bound H(p) = {_bits(stats.entropy)} "
        f"(p = {_pct(stats.zero_fraction)} zeros)",
        highlight=False,
    )
    if summary.xor_layers:
        console.print(
            f"coding: {summary.xor_layers} of {len(stats.layers)} layers store only the bits flipped "
            f"from the regenerated initial mask (xor-initial): flip rate {_pct(stats.flip_rate)}, "
            f"H(flip rate) = {_bits(stats.flip_entropy)}",
            highlight=False,
        )
        if summary.score_bands:
            console.print(
                "(score-band order also knows each weight's initial score, so it can go below H(flip rate))",
                highlight=False,
            )
    if info.dev:
        console.print(f"dev {task.metric}: {info.dev['score']:.4f} on {int(info.dev['n'])} examples", highlight=False)
    curve = info.curve
    if curve is not None:
        console.print(
            f"training: {len(curve.loss)} loss points to step {curve.steps[-1] if curve.steps else 0}"
            + (f" (each the mean of {curve.every} steps)" if curve.every > 1 else "")
            + f", {len(curve.evaluations)} dev evaluations, kept step {curve.kept_step}",
            highlight=False,
        )


def _layers_table(summary) -> Table:
    """One row per masked layer, short names and words so that it fits 80 columns."""
    xor = summary.xor_layers
    prefix, names = short_layer_names([layer.name for layer in summary.layers])
    table = titled_table(
        "masked layers"
        + (f" (names under {prefix}.)" if prefix else "")
        + ": p = fraction of zeros, bits per masked weight, coding scheme/order",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns = ["layer", "shape", "init p", "final p", "coding", "bits", "H(p)"]
    for column in columns + (["H(flip)"] if xor else []):
        table.add_column(column, no_wrap=True, justify="left" if column in ("layer", "coding") else "right")
    for layer, name in zip(summary.layers, names):
        how = "/".join(CODING_WORDS.get(word, word) for word in layer.coding)
        cells = [
            name,
            "x".join(map(str, layer.shape)),
            _sparsity(layer.init_sparsity),
            _sparsity(layer.final_sparsity),
            how or layer.scheme,
            f"{layer.bits_per_weight:.3f}",
            _bits(layer.entropy, unit=""),
        ]
        if xor:
            cells.append(_bits(layer.flip_entropy, unit="") if layer.scheme == "xor-initial" else "")
        table.add_row(*cells)
    return table


# Words of a layer's coding and name, shortened so that the table fits 80 columns (``--json``
# has every entry in full).
CODING_WORDS = {"xor-initial": "xor", "score-bands": "bands", "index": "idx"}
DROPPED_STEPS = {"encoder", "transformer", "layer", "layers", "self", "dense"}
SHORT_STEPS = {"attention": "attn"}


def short_layer_names(names: list[str]) -> tuple[str, list[str]]:
    """(prefix, short names): without the base model's prefix that most names share (``bert.``)
    and the steps every encoder layer repeats, so ``bert.encoder.layer.2.attention.self.query``
    reads ``2.attn.query``: a row keeps the block number and the matrix, what tells rows apart."""
    firsts = [name.split(".", 1)[0] for name in names if "." in name]
    prefix = max(set(firsts), key=firsts.count) if firsts else ""
    if firsts.count(prefix) * 2 <= len(names):
        prefix = ""
    short = []
    for name in names:
        steps = name.split(".")[1:] if prefix and name.startswith(prefix + ".") else name.split(".")
        kept = [SHORT_STEPS.get(step, step) for step in steps if step not in DROPPED_STEPS]
        short.append(".".join(kept or steps))
    return prefix, short


def _bits(value: float | None, unit: str = " bits") -> str:
    return "?" if value is None else f"{value:.3f}{unit}"


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.2%}"


def _sparsity(value: float | None) -> str:
    return f"{float('nan') if value is None else value:.3f}"
