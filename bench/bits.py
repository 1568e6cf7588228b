"""Figure 6: bundle size in bits per masked weight, against the entropy bounds of the mask.

Computed from the file and ``read_meta`` only, so that it checks the bundle format's claims
instead of repeating the bundle module's own statistics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def bundle_bits(path: Path) -> dict[str, Any]:
    """Bits per masked weight of the whole file and of the mask payload, against H(p).

    Computed from the file and ``read_meta`` only (plus the decoded masks for p), so it does
    not depend on the bundle module's own statistics. ``H(flips)`` is the entropy of the bits
    that differ from the regenerable initial mask: the bound for coding against it.
    """
    from safetensors import safe_open

    from maskctl.bundle.format import load_bundle, read_meta
    from maskctl.masking.layer import initial_scores
    from maskctl.masking.model import layer_seed

    path = Path(path)
    meta = read_meta(path)
    shapes = {layer["name"]: layer["shape"] for layer in meta["layers"]}
    weights = sum(math.prod(shape) for shape in shapes.values())
    payload = head_bytes = 0
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not iterable
            piece = handle.get_slice(key)
            size = math.prod(piece.get_shape()) * {"U8": 1, "F32": 4, "F16": 2, "BF16": 2}.get(piece.get_dtype(), 4)
            if key.startswith("mask/"):
                payload += size
            else:
                head_bytes += size
    bundle = load_bundle(path)
    zeros = sum(int((~m).sum()) for m in bundle.masks.values())
    layer_h = sum(m.numel() * binary_entropy(float((~m).sum()) / m.numel()) for m in bundle.masks.values())
    p = zeros / weights
    settings = meta.get("mask") or {}
    flips = None
    if {"seed", "threshold", "init_sparsity"} <= set(settings):
        flips = 0
        for name, mask in bundle.masks.items():
            scores = initial_scores(
                tuple(mask.shape), settings["init_sparsity"], settings["threshold"], layer_seed(settings["seed"], name)
            )
            flips += int((mask ^ (scores > settings["threshold"])).sum())
    size = path.stat().st_size
    return {
        "file_bytes": size,
        "masked_weights": weights,
        "mask_payload_bytes": payload,
        "head_bytes": head_bytes,
        "format_version": meta.get("format_version"),
        "bits_per_weight_file": 8 * size / weights,
        "bits_per_weight_payload": 8 * payload / weights,
        "zero_fraction": p,
        "entropy_bits": binary_entropy(p),
        "entropy_per_layer_bits": layer_h / weights,
        "flip_rate": None if flips is None else flips / weights,
        "flip_entropy_bits": None if flips is None else binary_entropy(flips / weights),
        "codings": sorted(
            {
                str(layer.get("coding", {}).get("scheme", "packbits"))
                + "/"
                + str(layer.get("coding", {}).get("codec", "none"))
                for layer in meta["layers"]
            }
        ),
    }


def bits_section(trained: dict[str, list[Path]], apply: dict[str, Any]) -> dict[str, Any]:
    """Figure 6 as ``run_all`` runs it: figure 7's seed-0 bundle per task, and the simulated
    bundles figure 4 (``apply``, its section of the results) wrote."""
    out_bits = {}
    for task, paths in trained.items():
        out_bits[f"MiniLM {task} trained seed 0"] = bundle_bits(paths[0])
    for key, label in (("minilm", "MiniLM"), ("bert_base", "BERT-base")):
        if key in apply and "path" in apply[key] and apply[key]["bundle"] == "simulated":
            out_bits[f"{label} simulated"] = bundle_bits(Path(apply[key]["path"]))
    return out_bits
