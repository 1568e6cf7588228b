"""Bit packing of masks and the fingerprint of the base weights a mask was learned on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """Pack a bool mask to uint8, 1 bit per weight (row-major, most significant bit first)."""
    bits = mask.detach().cpu().numpy().astype(bool).reshape(-1)
    return torch.from_numpy(np.packbits(bits))


def unpack_mask(packed: torch.Tensor, shape: Iterable[int]) -> torch.Tensor:
    """Inverse of ``pack_mask``: a bool tensor of ``shape``."""
    shape = tuple(int(s) for s in shape)
    count = int(np.prod(shape)) if shape else 1
    raw = packed.detach().cpu().numpy().astype(np.uint8, copy=False)
    if raw.size != (count + 7) // 8:
        raise ValueError(f"packed mask holds {raw.size} bytes, {(count + 7) // 8} expected for {shape}")
    bits = np.unpackbits(raw, count=count).astype(bool)
    return torch.from_numpy(bits.reshape(shape))


def fingerprint(model: nn.Module, names: Iterable[str]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the weights of ``names``.

    Names may point at a plain ``nn.Linear`` or a ``MaskedLinear`` (its ``base_layer`` is
    hashed), so the same fingerprint comes out before wrapping, during training and at eval.
    """
    digest = hashlib.sha256()
    for name in sorted(names):
        module = model.get_submodule(name)
        module = getattr(module, "base_layer", module)
        weight = module.weight.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}|{tuple(weight.shape)}|float32\n".encode())
        digest.update(weight.numpy().tobytes())
    return "sha256:" + digest.hexdigest()
