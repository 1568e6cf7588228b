"""The plain-PyTorch twin of ``flip_terms.c``: the same three operations on the same ``Flips``,
decoded by ``masking.flips.decode`` on each call.

It is the reference the compiled kernel is tested equal to, and the path where that kernel does
not run: no C compiler at install, ``MASKCTL_KERNEL=torch``, CUDA tensors, other dtypes. Nothing
is cached: a served task stays its byte streams whichever path reads them, at the price of a
decode per layer and call here.
"""

from __future__ import annotations

import numpy as np
import torch

from maskctl.masking.flips import Decoded, Flips, Removed, decode


def _index(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)).to(device)


def _columns(flips: Decoded, removed: Removed) -> np.ndarray:
    return removed.cols[flips.add_index].astype(np.int64)


def add_terms(
    groups: list[tuple[Flips, int, int]], weight: torch.Tensor, removed: Removed, x: torch.Tensor, out: torch.Tensor
) -> None:
    """``out[a:b] += x[a:b] Cᵀ`` for each (flips, a, b): ``C`` is ``−W ⊙ R`` at a remove and
    ``W`` (from ``removed``) at an add."""
    device = weight.device
    values_removed = torch.from_numpy(removed.values).to(device, weight.dtype)
    for flips, start, stop in groups:
        found = decode(flips, removed)
        rows = _index(np.concatenate([found.remove_rows, found.add_rows]), device)
        cols = _index(np.concatenate([found.remove_cols, _columns(found, removed)]), device)
        values = torch.cat(
            [
                -weight.detach()[_index(found.remove_rows, device), _index(found.remove_cols, device)],
                values_removed[_index(found.add_index, device)],
            ]
        )
        out[start:stop].index_add_(1, rows, x[start:stop, cols] * values)


def apply(flips: Flips, weight: torch.Tensor, removed: Removed) -> torch.Tensor:
    """Write the task's flips into ``weight`` in place; returns what the removes zeroed."""
    found = decode(flips, removed)
    device = weight.device
    rows, cols = _index(found.remove_rows, device), _index(found.remove_cols, device)
    data = weight.data
    saved = data[rows, cols].clone()
    data[rows, cols] = 0.0
    values = torch.from_numpy(removed.values[found.add_index]).to(device, weight.dtype)
    data[_index(found.add_rows, device), _index(_columns(found, removed), device)] = values
    return saved


def undo(flips: Flips, weight: torch.Tensor, removed: Removed, saved: torch.Tensor) -> None:
    """``apply`` undone, bit for bit."""
    found = decode(flips, removed)
    device = weight.device
    data = weight.data
    data[_index(found.remove_rows, device), _index(found.remove_cols, device)] = saved
    data[_index(found.add_rows, device), _index(_columns(found, removed), device)] = 0.0
