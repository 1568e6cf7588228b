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
    def weight(name: str) -> torch.Tensor:
        module = model.get_submodule(name)
        return getattr(module, "base_layer", module).weight

    return _digest((name, weight(name)) for name in sorted(names))


def tensors_fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """The same hash over named tensors (the pristine values of tuned parameters), in name order."""
    return _digest(sorted(tensors, key=lambda item: item[0]))


def _digest(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    digest = hashlib.sha256()
    for name, tensor in tensors:
        value = tensor.detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}|{tuple(value.shape)}|float32\n".encode())
        digest.update(value.numpy().tobytes())
    return "sha256:" + digest.hexdigest()
