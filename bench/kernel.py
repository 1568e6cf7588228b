"""``bench/run.py --kernel``: the served masks' term alone, per layer shape and group size.

For each masked layer shape of MiniLM and BERT-base and each group size (token rows a task has
in a batch), ``GROUPS`` tasks' flips at ``serving.FLIP_FRACTION`` (removes and adds in the
proportion trained bundles have) are added to their rows by the compiled kernel, and timed
against the dense product of the same rows with the shared weight (what the term rides on).
Reported: useful multiply-adds per second of the term (flips x rows / time: the multiply-adds
a dense product of ``C_t`` would spend on nonzeros), its time as a fraction of the dense
product's, the same for the plain-PyTorch twin, and for long groups the scatter-merge path
(flips written into the weight, one dense product, undone). Both sides run on one thread and
are timed in that thread's CPU time (``time.thread_time``), the median of ``REPEATS``
repetitions: on a shared 2-core machine wall time mostly measures the neighbours, CPU time the
work (the kernel is single-threaded; a server's dense products use both cores, BENCHMARKS.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import log, median, save_results
from maskctl.openmp import waits_passively

SHAPES = {"minilm": [(384, 384), (1536, 384), (384, 1536)], "bert-base": [(768, 768), (3072, 768), (768, 3072)]}
ROWS = (1, 8, 24, 64, 128)
GROUPS = 16
REMOVED = 0.05  # of the weights the reference (initial) mask removes
ADDED_SHARE = 0.4  # of a trained task's flips, the share that adds back a weight the reference removes
REPEATS = 15


def _task_masks(reference: np.ndarray, flips: float, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    masks = []
    keep, drop = reference.mean(), 1 - reference.mean()
    for _ in range(count):
        mask = reference.copy()
        removes = reference & (rng.random(reference.shape) < flips * (1 - ADDED_SHARE) / keep)
        adds = ~reference & (rng.random(reference.shape) < flips * ADDED_SHARE / drop)
        mask[removes] = False
        mask[adds] = True
        masks.append(mask)
    return masks


def _timed(fn, repeats: int = REPEATS, clock=time.thread_time) -> float:
    fn()
    times = []
    for _ in range(repeats):
        tick = clock()
        fn()
        times.append(clock() - tick)
    return median(times)


def bench_layer(
    out_features: int, in_features: int, rows: int, flip_fraction: float, seed: int = 0, cores: int = 1
) -> dict[str, Any]:
    from maskctl.masking import kernels
    from maskctl.masking.flips import Removed, encode
    from maskctl.masking.kernels import reference as plain

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
    ref = rng.random((out_features, in_features)) >= REMOVED
    removed = Removed.of(weight, ref)
    resident = torch.from_numpy(weight).masked_fill(torch.from_numpy(~ref), 0.0)
    groups = min(GROUPS, max(1, 2048 // rows))
    masks = _task_masks(ref, flip_fraction, groups, rng)
    flips = [encode(m, ref, removed) for m in masks]
    x = torch.randn(groups * rows, in_features)
    out = torch.empty(groups * rows, out_features)
    table = [(f, g * rows, (g + 1) * rows) for g, f in enumerate(flips)]
    count = sum(f.count for f in flips)
    dense = _timed(lambda: torch.mm(x, resident.t(), out=out))
    row: dict[str, Any] = {
        "shape": [out_features, in_features],
        "rows": rows,
        "groups": groups,
        "flips": count,
        "dense_ms": dense * 1e3,
        "dense_gmac_s": x.shape[0] * in_features * out_features / dense / 1e9,
    }
    if kernels.compiled_available():
        term = _timed(lambda: kernels.add_terms(table, resident, removed, x, out))
        row.update(term_ms=term * 1e3, term_gmac_s=count * rows / term / 1e9, term_over_dense=term / dense)

        def scatter() -> None:
            for f, a, b in table:
                saved = kernels.apply(f, resident, removed)
                torch.mm(x[a:b], resident.t(), out=out[a:b])
                kernels.undo(f, resident, removed, saved)

        row["scatter_over_dense"] = _timed(scatter) / dense
        if cores > 1 and waits_passively():  # both cores, wall time: what a server's batch sees
            torch.set_num_threads(cores)
            try:
                dense_wall = _timed(lambda: torch.mm(x, resident.t(), out=out), clock=time.perf_counter)
                term_wall = _timed(
                    lambda: kernels.add_terms(table, resident, removed, x, out, threads=cores), clock=time.perf_counter
                )
            finally:
                torch.set_num_threads(1)
            row.update(
                cores=cores,
                term_wall_gmac_s=count * rows / term_wall / 1e9,
                term_over_dense_wall=term_wall / dense_wall,
            )
    reference = _timed(lambda: plain.add_terms(table, resident, removed, x, out), repeats=3)
    row.update(reference_ms=reference * 1e3, reference_gmac_s=count * rows / reference / 1e9)
    return row


def bench_kernel(flip_fraction: float, models=("minilm", "bert-base"), rows=ROWS) -> dict[str, Any]:
    """Every layer shape and group size; one thread in CPU time, and where OpenMP waits
    passively (``maskctl/openmp.py``, as ``maskctl serve`` runs) all cores in wall time too."""
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, Any] = {
        "flip_fraction": flip_fraction,
        "threads": 1,
        "cores": cores,
        "passive": waits_passively(),
        "layers": [],
    }
    try:
        _bench_all(out, flip_fraction, models, rows, cores)
    finally:
        torch.set_num_threads(cores)
    return out


def _bench_all(out: dict[str, Any], flip_fraction: float, models, rows, cores: int) -> None:
    for model in models:
        for shape in SHAPES[model]:
            for n in rows:
                row = {"model": model, **bench_layer(*shape, n, flip_fraction, cores=cores)}
                out["layers"].append(row)
                log(
                    f"kernel: {model} {shape[0]}x{shape[1]}, {row['groups']} groups x {n} rows: "
                    + (
                        f"term {row['term_gmac_s']:.1f} GMAC/s = {row['term_over_dense']:.3f} of dense, "
                        f"scatter {row['scatter_over_dense']:.2f} of dense, "
                        if "term_ms" in row
                        else ""
                    )
                    + f"reference {row['reference_gmac_s']:.2f} GMAC/s"
                )


def kernel_lines(result: dict[str, Any]) -> list[str]:
    """The table for BENCHMARKS.md: per model and group size, the term summed over the shapes."""
    lines = [
        (
            f"Flips: {100 * result['flip_fraction']:.1f} % of each layer's weights; one thread in CPU time, and "
            f"{result.get('cores', 1)} cores in wall time (OpenMP waiting passively, as `maskctl serve` runs)."
        ),
        "",
        (
            "| model | rows a group | term GMAC/s (useful), 1 thread | term / dense, 1 thread | term GMAC/s, all cores | "
            "term / dense, all cores | scatter-merge / dense, 1 thread | plain PyTorch GMAC/s |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in result["layers"]:
        by.setdefault((row["model"], row["rows"]), []).append(row)
    for (model, n), rows in by.items():
        macs = sum(r["flips"] * r["rows"] for r in rows)
        dense = sum(r["dense_ms"] for r in rows)
        plain = macs / sum(r["reference_ms"] for r in rows) / 1e6
        if all("term_ms" in r for r in rows):
            term = sum(r["term_ms"] for r in rows)
            scatter = sum(r["scatter_over_dense"] * r["dense_ms"] for r in rows)
            wall = ["", ""]
            if all("term_wall_gmac_s" in r for r in rows):  # per shape; the shapes' mean ratio
                wall_s = sum(r["flips"] * r["rows"] / r["term_wall_gmac_s"] for r in rows) / 1e9
                wall = [f"{macs / wall_s / 1e9:.1f}", f"{sum(r['term_over_dense_wall'] for r in rows) / len(rows):.3f}"]
            lines.append(
                f"| {model} | {n} | {macs / term / 1e6:.1f} | {term / dense:.3f} | {wall[0]} | {wall[1]} | "
                f"{scatter / dense:.2f} | {plain:.2f} |"
            )
        else:
            lines.append(f"| {model} | {n} | (not compiled) | | | | | {plain:.2f} |")
    return lines


def write_kernel(results: dict[str, Any], out: Path) -> Path:
    """``results-kernel.json`` and its table."""
    lines = [save_results(results, out, "kernel"), ""] + kernel_lines(results["sections"]["kernel"])
    path = out / "results-kernel.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
