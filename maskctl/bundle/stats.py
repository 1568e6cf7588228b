"""How close a bundle's masks come to their entropy: bits per masked weight next to H(p).

Why: "one bit per masked weight" was format 1's fixed price. Format 2 entropy-codes the masks,
so the honest figures are the payload actually stored (mask bytes * 8 / masked weights) and the
binary-entropy bound H(p) of a mask with a fraction p of zeros, the least any coder can spend
on i.i.d. bits with that fraction. For ``xor-initial`` layers the flips are what is coded, so
H(flip rate) is reported too; coding in ``score-bands`` order can go below even that bound,
since it also knows each weight's initial score (flips cluster near the threshold).
Everything is computed from the JSON self-description alone, so ``maskctl inspect`` stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maskctl.errors import BundleError


def binary_entropy(p: float) -> float:
    """H(p) in bits: -p log2 p - (1 - p) log2 (1 - p); 0 at p = 0 or 1."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


@dataclass
class LayerStats:
    name: str
    weights: int
    payload_bytes: int
    scheme: str  # "packbits" (format 1), "plain" or "xor-initial"
    zero_fraction: float | None  # p, fraction of zeros of the final mask (None: unknown)
    flip_rate: float | None = None  # fraction of bits that differ from the initial mask

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.payload_bytes / self.weights if self.weights else 0.0

    @property
    def entropy(self) -> float | None:
        return None if self.zero_fraction is None else binary_entropy(self.zero_fraction)

    @property
    def flip_entropy(self) -> float | None:
        return None if self.flip_rate is None else binary_entropy(self.flip_rate)


@dataclass
class MaskStats:
    layers: list[LayerStats] = field(default_factory=list)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def payload_bytes(self) -> int:
        return sum(layer.payload_bytes for layer in self.layers)

    @property
    def bits_per_weight(self) -> float:
        """Mask payload bytes * 8 / masked weights (headers, metadata and head not counted)."""
        return 8.0 * self.payload_bytes / self.weights if self.weights else 0.0

    @property
    def zero_fraction(self) -> float | None:
        return self._mean([(layer, layer.zero_fraction) for layer in self.layers])

    @property
    def entropy(self) -> float | None:
        """Weighted mean of the layers' H(p): the bound for coding each mask on its own."""
        return self._mean([(layer, layer.entropy) for layer in self.layers])

    @property
    def xor_layers(self) -> list[LayerStats]:
        return [layer for layer in self.layers if layer.scheme == "xor-initial"]

    @property
    def flip_rate(self) -> float | None:
        return self._mean([(layer, layer.flip_rate) for layer in self.xor_layers])

    @property
    def flip_entropy(self) -> float | None:
        """Weighted mean of H(flip rate) over the xor-initial layers."""
        return self._mean([(layer, layer.flip_entropy) for layer in self.xor_layers])

    @staticmethod
    def _mean(pairs: list[tuple[LayerStats, float | None]]) -> float | None:
        if not pairs or any(value is None for _, value in pairs):
            return None
        total = sum(layer.weights for layer, _ in pairs)
        return sum(layer.weights * value for layer, value in pairs) / total if total else None


def mask_stats(source: Any) -> MaskStats:
    """Per-layer and overall mask statistics of a ``Bundle`` or of its metadata dict.

    Format 1 layers count ceil(n / 8) bytes and take p from their recorded final sparsity;
    a ``Bundle`` with masks in memory gives the exact p for them as well.
    """
    meta: Mapping[str, Any] = source if isinstance(source, Mapping) else source.meta
    masks = {} if isinstance(source, Mapping) else source.masks
    stats = MaskStats()
    for layer in meta.get("layers", []):
        weights = math.prod(int(dim) for dim in layer["shape"])
        coding = layer.get("coding")
        if coding is not None:
            stats.layers.append(_coded_layer(layer["name"], weights, coding))
            continue
        mask = masks.get(layer["name"])
        if mask is not None:
            p = int((~mask.bool()).sum()) / weights if weights else 0.0
        else:
            p = layer.get("final_sparsity")
        stats.layers.append(LayerStats(layer["name"], weights, (weights + 7) // 8, "packbits", p))
    return stats


def _coded_layer(name: str, weights: int, coding: Any) -> LayerStats:
    """Stats of a format 2 layer from its ``coding`` entry, refusing a malformed one clearly."""
    fields = {key: coding.get(key) for key in ("bytes", "zeros", "flips")} if isinstance(coding, Mapping) else {}
    valid = {
        key: isinstance(value, int) and not isinstance(value, bool) and value >= 0 for key, value in fields.items()
    }
    if not (
        fields
        and valid["bytes"]
        and valid["zeros"]
        and fields["zeros"] <= weights
        and (fields["flips"] is None or (valid["flips"] and fields["flips"] <= weights))
    ):
        raise BundleError(
            f"layer {name} has a malformed coding entry in the bundle metadata", "the bundle is damaged; train it again"
        )
    flips = fields["flips"]
    return LayerStats(
        name,
        weights,
        fields["bytes"],
        str(coding.get("scheme")),
        fields["zeros"] / weights if weights else 0.0,
        flips / weights if weights and flips is not None else None,
    )
