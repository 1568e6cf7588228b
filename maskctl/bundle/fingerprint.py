"""The fingerprint of the base weights a mask was learned on (and of the pristine values of
parameters tuned beside it): a bundle stores it, and every loader compares it with the base it
was given, so a mask is never applied to other weights of the same shapes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import cast

import torch
from torch import nn


def fingerprint(model: nn.Module, names: Iterable[str]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of the weights of ``names``.

    Names may point at a plain ``nn.Linear`` or a ``MaskedLinear`` (its ``base_layer`` is
    hashed), so the same fingerprint comes out before wrapping, during training and at eval.
    """

    def weight(name: str) -> torch.Tensor:
        module = model.get_submodule(name)
        return cast(torch.Tensor, getattr(module, "base_layer", module).weight)

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
