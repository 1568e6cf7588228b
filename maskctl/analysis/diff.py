"""Mask difference between tasks, per layer and per transformer block (Zhao et al. 2020, §6.2).

For two bundles trained on the same base model, the paper's score of one weight matrix is

    s = ||M1 - M2||_1 / (||M1 - M1,init||_1 + ||M2 - M2,init||_1)

with M the trained binary masks and M_init the masks they started from: how much the two
masks differ, as a fraction of all the change training made. The paper finds s grows in
higher layers: upper blocks are more task specific.

Why it is computed this way:

* M_init is not stored: it is regenerated from the bundle's own mask settings (seed, threshold,
  initial sparsity) and each layer's name by ``InitialMasks``, the very generator bundle
  decoding uses, so it is the mask training started from, bit for bit.
* Bundles are decoded one layer at a time (``MaskReader``), as bool arrays: comparing many
  bundles of a large model never holds all masks, or anything in float, at once.
* A block's score sums the numerators and the denominators over the block's matrices (not a
  mean of ratios), so big FFN matrices weigh as much as their weights.
* With the same seed (and settings) both bundles start from the same initial mask and, by the
  triangle inequality, 0 <= s <= 1. With different seeds the initial masks differ in about
  2p(1-p) of the bits and those differences count in the numerator too, so s can exceed 1;
  the ``init_differs`` column says how much the starting masks differ.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskctl.bundle.format import MaskReader
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.bundle.mask_coding import InitialMasks
from maskctl.errors import BundleError, MaskctlError
from maskctl.experiments.report import new_figure, save_figure, write_table
from maskctl.masking.targets import FAMILIES
from maskctl.version import __version__

FORMULA = "s = ||M1 - M2||_1 / (||M1 - M1,init||_1 + ||M2 - M2,init||_1)"
ROLE_ORDER = {"pooler": 1, "classifier": 2, "other": 3}


def layer_group(name: str) -> tuple[str, tuple[int, int]]:
    """The row a masked layer is aggregated into: ``block N``, ``pooler``, ``classifier``."""
    families = FAMILIES.values()
    for family in families:
        match = re.search(rf"(?:^|\.){re.escape(family.blocks)}\.(\d+)\.", name)
        if match:
            return f"block {int(match.group(1))}", (0, int(match.group(1)))
    for role, attr in (("classifier", "outputs"), ("pooler", "poolers")):
        if any(name == candidate for family in families for candidate in getattr(family, attr)):
            return role, (ROLE_ORDER[role], 0)
    return "other", (ROLE_ORDER["other"], 0)


def initial_generator(reader: MaskReader) -> InitialMasks:
    """The bundle's initial-mask generator: the one its decoding uses, else its mask settings."""
    initial = reader.initial or InitialMasks.from_settings(reader.info.mask.to_dict() if reader.info.mask else None)
    if initial is None:
        raise BundleError(
            f"{reader.path} records no usable mask seed, threshold and initial sparsity",
            "its initial mask cannot be regenerated; train it again with this maskctl",
        )
    return initial


@dataclass
class Counts:
    """Bit counts of one pair over one matrix or one block (summed)."""

    weights: int = 0
    diff: int = 0  # ||M1 - M2||_1
    changed_a: int = 0  # ||M1 - M1,init||_1
    changed_b: int = 0
    init_diff: int = 0  # ||M1,init - M2,init||_1: 0 when both started from the same mask
    matrices: int = 0

    def add(self, other: Counts) -> None:
        for name in ("weights", "diff", "changed_a", "changed_b", "init_diff", "matrices"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def score(self) -> float | None:
        """s; 0 for identical masks, None when neither mask changed yet they differ."""
        denominator = self.changed_a + self.changed_b
        if denominator == 0:
            return 0.0 if self.diff == 0 else None
        return self.diff / denominator

    def row(self) -> dict[str, Any]:
        return {
            "matrices": self.matrices,
            "weights": self.weights,
            "diff_bits": self.diff,
            "changed_bits_a": self.changed_a,
            "changed_bits_b": self.changed_b,
            "s": self.score,
            "init_differs": self.init_diff / self.weights if self.weights else 0.0,
        }


@dataclass
class DiffResult:
    bundles: list[Path]
    names: list[str]
    blocks: list[dict[str, Any]]  # one row per pair and block (or pooler / classifier)
    layers: list[dict[str, Any]]  # one row per pair and masked matrix
    changes: list[dict[str, Any]]  # one row per bundle and masked matrix
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def check_same_base(readers: list[MaskReader]) -> list[str]:
    """Refuse, in one line naming it, the first bundle whose base model differs from the first's.

    Bundles whose fingerprints cover the same layers must have the same fingerprint. A tagging
    and a classification bundle cover different layers (a token classifier has no pooler), so
    for them the base is matched by its recorded source (kind, location, version), model type
    and masked blocks instead, with a note saying so.
    """
    first = readers[0]
    notes = []
    for reader in readers[1:]:
        ours, theirs = first.info.base_model, reader.info.base_model
        if ours.fingerprint_layers == theirs.fingerprint_layers:
            checks = (("base model (or masked blocks)", lambda i: i.base_model.fingerprint),)
        else:
            checks = (
                ("base model", lambda i: i.base_model.identity),
                ("model type", lambda i: i.base_model.model_type),
                ("set of masked blocks", lambda i: i.mask.block_ids),
            )
            notes.append(
                f"{reader.path.name} masks other head layers than {first.path.name}: their base model is "
                "matched by its source and version, not by its weight fingerprint"
            )
        for what, get in checks:
            if get(reader.info) != get(first.info):
                raise BundleError(
                    f"{reader.path} has another {what} than {first.path}",
                    "compare masks trained on the same base model with the same --mask-blocks",
                )
    return notes


def _names(paths: list[Path]) -> list[str]:
    stems = [p.name.removesuffix(".bundle") for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p) for p in paths]


def mask_difference(paths: list[str | Path], out_dir: str | Path | None = None) -> DiffResult:
    """Compare every pair of ``paths`` layer by layer; write the tables and figure to ``out_dir``."""
    started = time.perf_counter()
    paths = [resolve_bundle_ref(p) for p in paths]  # hf:// references: files in the Hugging Face cache
    if len(paths) < 2:
        raise MaskctlError("a mask difference needs at least two bundles", "pass two or more *.bundle files")
    readers = [MaskReader(p) for p in paths]
    try:
        base_notes = check_same_base(readers)
        generators = [initial_generator(r) for r in readers]
        names = _names(paths)
        pairs = list(itertools.combinations(range(len(paths)), 2))
        order, shapes, notes = _layer_order(readers, names)
        notes = base_notes + notes
        layer_rows: list[dict[str, Any]] = []
        change_rows: list[dict[str, Any]] = []
        blocks: dict[tuple[int, int], dict[str, Counts]] = {pair: {} for pair in pairs}
        keys: dict[str, tuple[int, int]] = {}
        for name in order:
            group, key = layer_group(name)
            keys[group] = key
            masks = [_bits(r.mask(name)) if name in shapes[i] else None for i, r in enumerate(readers)]
            initial = _initial_bits(generators, name, masks)
            for i, (mask, init) in enumerate(zip(masks, initial)):
                if mask is not None:
                    change_rows.append(
                        {
                            "bundle": names[i],
                            "group": group,
                            "layer": name,
                            "weights": mask.size,
                            "changed_bits": int(np.count_nonzero(mask ^ init)),
                            "changed": float(np.count_nonzero(mask ^ init)) / mask.size,
                            "init_sparsity": 1.0 - np.count_nonzero(init) / mask.size,
                            "sparsity": 1.0 - np.count_nonzero(mask) / mask.size,
                        }
                    )
            for a, b in pairs:
                if masks[a] is None or masks[b] is None or shapes[a][name] != shapes[b][name]:
                    continue
                counts = Counts(
                    weights=masks[a].size,
                    matrices=1,
                    diff=int(np.count_nonzero(masks[a] ^ masks[b])),
                    changed_a=int(np.count_nonzero(masks[a] ^ initial[a])),
                    changed_b=int(np.count_nonzero(masks[b] ^ initial[b])),
                    init_diff=int(np.count_nonzero(initial[a] ^ initial[b])),
                )
                layer_rows.append({**_pair(names, a, b), "group": group, "layer": name, **counts.row()})
                blocks[(a, b)].setdefault(group, Counts()).add(counts)
            del masks, initial
    finally:
        for reader in readers:
            reader.close()
    block_rows = [
        {**_pair(names, a, b), "group": group, **counts.row()}
        for (a, b), groups in blocks.items()
        for group, counts in sorted(groups.items(), key=lambda item: keys[item[0]])
    ]
    for a, b in pairs:
        if any(row["init_differs"] for row in layer_rows if (row["a"], row["b"]) == (names[a], names[b])):
            notes.append(
                f"{names[a]} and {names[b]} start from different initial masks (seed or settings "
                "differ): their initial differences count in s, which can then exceed 1"
            )
    result = DiffResult(
        bundles=paths, names=names, blocks=block_rows, layers=layer_rows, changes=change_rows, notes=notes
    )
    if out_dir is not None:
        meta = _meta(readers, names, notes, time.perf_counter() - started)
        result.files = write_diff(result, out_dir, meta)
    return result


def _layer_order(readers: list[MaskReader], names: list[str]) -> tuple[list[str], list[dict[str, list]], list[str]]:
    """Every masked layer in the first bundle's order (then others'), and notes on skipped ones."""
    shapes = [{name: list(layer["shape"]) for name, layer in r.layers.items()} for r in readers]
    order = list(dict.fromkeys(name for r in readers for name in r.layers))
    notes = []
    for name in order:
        present = [shapes[i].get(name) for i in range(len(readers))]
        holders = [names[i] for i, shape in enumerate(present) if shape is not None]
        if len(holders) < len(readers):
            notes.append(f"{name} is masked only in {', '.join(holders)}: not compared")
        elif any(shape != present[0] for shape in present):
            described = ", ".join(f"{names[i]} {tuple(s)}" for i, s in enumerate(present))
            notes.append(
                f"{name} has different shapes ({described}; e.g. other label counts): "
                "compared only between bundles of the same shape"
            )
    return order, shapes, notes


def _bits(mask: Any) -> np.ndarray:
    return np.ascontiguousarray(mask.numpy().reshape(-1)).astype(bool, copy=False)


def _initial_bits(generators: list[InitialMasks], name: str, masks: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """Each bundle's initial mask of ``name``, regenerated once per distinct generator and size."""
    cache: dict[tuple[InitialMasks, int], np.ndarray] = {}
    out: list[np.ndarray | None] = []
    for generator, mask in zip(generators, masks):
        if mask is None:
            out.append(None)
            continue
        key = (generator, mask.size)
        if key not in cache:
            cache[key] = generator.mask(generator.scores(name, mask.size))
        out.append(cache[key])
    return out


def _pair(names: list[str], a: int, b: int) -> dict[str, str]:
    return {"pair": f"{names[a]} vs {names[b]}", "a": names[a], "b": names[b]}


def _meta(readers: list[MaskReader], names: list[str], notes: list[str], seconds: float) -> dict[str, Any]:
    return {
        "formula": FORMULA + " (Zhao et al. 2020, §6.2); a block sums numerators and denominators",
        "bundles": [
            {
                "name": n,
                "path": str(r.path),
                "task": r.info.task_name,
                "seed": r.info.mask.seed,
                "init_sparsity": r.info.mask.init_sparsity,
            }
            for n, r in zip(names, readers)
        ],
        "base_model": readers[0].info.base_model.spec,
        "fingerprint": readers[0].info.base_model.fingerprint,
        "notes": notes,
        "maskctl": __version__,
        "seconds": round(seconds, 2),
    }


def write_diff(result: DiffResult, out_dir: str | Path, meta: dict[str, Any]) -> dict[str, Path]:
    """``mask_diff`` (per block), ``mask_diff_layers``, ``mask_changes`` tables and ``mask_diff.png``."""
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    for name, rows, title in (
        ("mask_diff", result.blocks, "Mask difference s per block"),
        ("mask_diff_layers", result.layers, "Mask difference s per masked matrix"),
        ("mask_changes", result.changes, "Bits changed from the initial mask, per bundle"),
    ):
        files.update({f"{name}.{kind}": path for kind, path in write_table(rows, out_dir, name, meta, title).items()})
    files["mask_diff.png"] = save_figure(diff_figure(result), out_dir / "mask_diff.png")
    return files


def diff_figure(result: DiffResult) -> Any:
    """Left: s per block, one line per pair. Right: fraction of bits changed per block, per bundle."""
    fig = new_figure(11.0, 4.2)
    left, right = fig.subplots(1, 2)
    groups = list(dict.fromkeys(row["group"] for row in result.blocks))
    ticks = [g.removeprefix("block ") for g in groups]
    for pair in dict.fromkeys(row["pair"] for row in result.blocks):
        rows = [row for row in result.blocks if row["pair"] == pair]
        values = {row["group"]: row["s"] for row in rows}
        ys = [values.get(g) for g in groups]
        other_init = any(row["init_differs"] for row in rows)  # dashed: s counts initial differences too
        left.plot(
            range(len(groups)),
            [np.nan if y is None else y for y in ys],
            marker="o",
            linestyle="--" if other_init else "-",
            label=pair + (" (other initial mask)" if other_init else ""),
        )
    left.set(
        xticks=range(len(groups)),
        xticklabels=ticks,
        xlabel="block",
        ylabel="mask difference s",
        title="s per block (higher = more task specific)",
    )
    _from_zero(left, [row["s"] for row in result.blocks], at_least=1.0)  # s <= 1 when both start alike
    left.grid(alpha=0.3)
    left.legend(fontsize="small")
    for bundle in result.names:
        totals: dict[str, list[int]] = {}
        for row in result.changes:
            if row["bundle"] == bundle:
                total = totals.setdefault(row["group"], [0, 0])
                total[0] += row["changed_bits"]
                total[1] += row["weights"]
        ys = [totals[g][0] / totals[g][1] if g in totals and totals[g][1] else np.nan for g in groups]
        right.plot(range(len(groups)), ys, marker="s", label=bundle)
    right.set(
        xticks=range(len(groups)),
        xticklabels=ticks,
        xlabel="block",
        ylabel="fraction of bits changed",
        title="change from the initial mask",
    )
    _from_zero(right, [y for line in right.get_lines() for y in line.get_ydata()])
    right.grid(alpha=0.3)
    right.legend(fontsize="small")
    fig.suptitle("Mask difference between tasks (Zhao et al. 2020, §6.2)")
    return fig


def _from_zero(ax: Any, values: list[float | None], at_least: float = 0.0) -> None:
    """The y axis from 0 to above the highest value. Why not ``set_ylim(bottom=0)`` alone: it
    keeps matplotlib's top, a 5 % margin of the data's own span, so lines as flat as s per block
    (0.73 to 0.70) sat on the top edge with their markers cut in half."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    top = max([at_least, *finite]) or 1.0  # all zero: any scale
    ax.set_ylim(0, top * 1.08)
