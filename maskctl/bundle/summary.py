"""What ``maskctl inspect`` reports about one bundle, as data: the typed self-description, the
file's size against the masked weights, and per layer its sparsities, coding and bits against
the entropy bound.

Why: the report is facts about the on-disk contract, so it is computed here beside it, from the
JSON self-description alone (no tensor is loaded, so inspecting stays cheap), and the CLI only
prints it. Each part is computed when first asked for: ``inspect --json`` prints the stored JSON
of a bundle whose typed record or coding entries would not parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from maskctl.bundle.format import read_meta
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.bundle.meta import BundleMeta
from maskctl.bundle.stats import MaskStats, mask_stats

XOR_INITIAL, SCORE_BANDS = "xor-initial", "score-bands"


@dataclass(frozen=True)
class LayerSummary:
    """One masked matrix as the report shows it."""

    name: str
    shape: tuple[int, ...]
    init_sparsity: float | None
    final_sparsity: float | None
    coding: tuple[str, ...]  # the stored scheme and order, those present ("xor-initial", "score-bands")
    scheme: str  # what the payload codes: "packbits" (format 1), "plain" or "xor-initial"
    bits_per_weight: float  # payload bits per masked weight
    entropy: float | None  # H(p) of the final mask, p the fraction of zeros
    flip_entropy: float | None  # H(flip rate) of an xor-initial layer; None for the others


@dataclass
class BundleSummary:
    """One bundle described: ``meta`` is the stored JSON as read, the rest is derived from it."""

    path: Path  # the file (an hf:// reference resolved to the file in the Hugging Face cache)
    meta: dict[str, Any]
    file_bytes: int

    @cached_property
    def info(self) -> BundleMeta:
        return BundleMeta.from_dict(self.meta, self.path)

    @cached_property
    def stats(self) -> MaskStats:
        return mask_stats(self.meta)

    @property
    def title(self) -> str:
        """``task on base``: what a figure of this bundle is called."""
        return f"{self.info.task_name} on {self.info.base_model.spec}"

    @property
    def file_bits_per_weight(self) -> float:
        """The whole file's bits (masks, head, metadata, header) per masked weight."""
        weights = self.info.masked_weights
        return 8 * self.file_bytes / weights if weights else 0.0

    @property
    def xor_layers(self) -> int:
        """Layers that store only the bits flipped from the regenerated initial mask."""
        return len(self.stats.xor_layers)

    @property
    def score_bands(self) -> bool:
        """Whether a layer is coded in score-band order, which knows each weight's initial score
        and so can go below H(flip rate)."""
        return any(layer.coding_order == SCORE_BANDS for layer in self.info.layers)

    @cached_property
    def layers(self) -> list[LayerSummary]:
        rows = []
        for layer, stats in zip(self.info.layers, self.stats.layers):
            coding = layer.coding or {}
            rows.append(
                LayerSummary(
                    name=layer.name,
                    shape=layer.shape,
                    init_sparsity=layer.init_sparsity,
                    final_sparsity=layer.final_sparsity,
                    coding=tuple(str(coding[key]) for key in ("scheme", "order") if key in coding),
                    scheme=stats.scheme,
                    bits_per_weight=stats.bits_per_weight,
                    entropy=stats.entropy,
                    flip_entropy=stats.flip_entropy if stats.scheme == XOR_INITIAL else None,
                )
            )
        return rows


def summarize_bundle(ref: str | Path) -> BundleSummary:
    """The summary of a ``*.bundle`` file or an ``hf://`` reference (fetched into the Hugging
    Face cache); only the JSON self-description is read."""
    path = resolve_bundle_ref(ref)
    return BundleSummary(path=path, meta=read_meta(path), file_bytes=path.stat().st_size)
