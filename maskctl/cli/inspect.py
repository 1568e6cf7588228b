"""``maskctl inspect``: print a bundle's self-description."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from maskctl.cli.console import console


def inspect_bundle(
    bundle: Path = typer.Argument(..., help="The *.bundle to describe."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw metadata as JSON."),
) -> None:
    """Describe a bundle: base model, task, masked layers, sparsity, metrics, size."""
    from maskctl.bundle.format import read_meta

    meta = read_meta(bundle)
    if as_json:
        console.print_json(json.dumps(meta))
        return
    base, task, mask = meta["base_model"], meta["task"], meta["mask"]
    weights = sum(_count(layer["shape"]) for layer in meta["layers"])
    size = bundle.stat().st_size
    console.print(f"[bold]{bundle}[/] (format {meta['format_version']}, maskctl {meta['maskctl_version']})")
    console.print(f"base model: {base['source']['spec']} ({base['model_type']}, {base['source']['kind']}"
                  f" {base['source']['location']}) fingerprint {base['fingerprint'][:23]}…", highlight=False)
    console.print(f"task: {task['name']} ({task['kind']}, {task['metric']}), labels: {', '.join(task['labels'])}",
                  highlight=False)
    console.print(f"mask: tau {mask['threshold']}, initial sparsity {mask['init_sparsity']}, blocks "
                  f"{mask['block_ids']}, head {mask['head']}, seed {mask['seed']}", highlight=False)
    console.print(f"sparsity: {meta['sparsity']['init']:.4%} at init -> {meta['sparsity']['final']:.4%} trained",
                  highlight=False)
    console.print(f"size: {size:,} bytes for {weights:,} masked weights = {8 * size / weights:.3f} bits per "
                  f"masked weight (whole file)", highlight=False)
    dev = meta.get("metrics", {}).get("dev")
    if dev:
        console.print(f"dev {task['metric']}: {dev['score']:.4f} on {int(dev['n'])} examples", highlight=False)
    table = Table(title="masked layers")
    for column in ("layer", "shape", "init sparsity", "final sparsity"):
        table.add_column(column)
    for layer in meta["layers"]:
        table.add_row(layer["name"], "x".join(map(str, layer["shape"])),
                      f"{layer.get('init_sparsity', float('nan')):.4f}", f"{layer.get('final_sparsity', float('nan')):.4f}")
    console.print(table)


def _count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
