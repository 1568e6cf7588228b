"""The mixed-mask forward: one batch whose rows belong to different tasks, one base pass.

A masked linear computes ``x (W ⊙ M_t)ᵀ = x Wᵀ − x (W ⊙ ¬M_t)ᵀ``. The first term is the same
for every task, so the pristine resident ``W`` computes it once for all rows of the batch (one
large dense product); each task's rows then add its *correction* ``x Sₜᵀ`` with
``Sₜ = −(W ⊙ ¬M_t)``, a sparse matrix holding only the weights the mask removes (about 5 % of
them at the paper's sparsity). The shared weights are never written, so requests of any mix of
tasks run together (this is S-LoRA's / Punica's "base pass + per-adapter term on its rows",
with a sparse term in place of a low-rank one).

Groups with many token rows (long texts, several requests of one task) instead run one dense
product with their own masked weight ``W + Sₜ`` (exactly ``W ⊙ Mₜ``, built in ~0.1 ms from the
sparse matrix): the sparse term costs a roughly fixed share of the output, the dense one only a
weight-sized pass per group. ``DENSE_MIN_TOKENS`` switches between them, chosen from
measurements; ``bench/serving.py`` measures the whole model.

``MixedMaskLinear`` wraps a ``base_layer`` (PEFT's pattern) and reads the current batch's row
groups from a shared ``Routing``; outside a routed call it is the plain base layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn


# A task's rows use a dense product with their own masked weight ``W + S`` (built per layer and
# batch: ~0.1 ms for a 1536x384 matrix) from this many token rows on; below it they share the
# base pass and add ``x Sᵀ``. Measured on this machine's CPU for MiniLM's FFN matrix with 16
# groups: the sparse term adds ~35 % whatever the group size, the dense one +200 % at 8 rows,
# +24 % at 48, +6 % at 128 (one thread); see BENCHMARKS.md "Serving many tasks".
DENSE_MIN_TOKENS = 64


@dataclass(frozen=True)
class RowGroup:
    """Rows ``start:stop`` of the batch (dimension 0) and their task's corrections by layer."""

    start: int
    stop: int
    corrections: Mapping[str, torch.Tensor]


class Routing:
    """The row groups of the batch being computed; empty outside ``route``."""

    def __init__(self) -> None:
        self.groups: tuple[RowGroup, ...] = ()

    @contextlib.contextmanager
    def route(self, groups: list[RowGroup]) -> Iterator[None]:
        self.groups = tuple(g for g in groups if g.corrections)
        try:
            yield
        finally:
            self.groups = ()


class MixedMaskLinear(nn.Module):
    """A frozen linear whose output gets each row group's sparse correction."""

    def __init__(self, base_layer: nn.Linear, name: str, routing: Routing) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.name = name  # the key of this layer in a task's corrections
        self.routing = routing

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.routing.groups
        if not groups:
            return self.base_layer(x)
        weight, bias = self.base_layer.weight, self.base_layer.bias
        flat_x = x.reshape(-1, x.shape[-1])
        per_row = flat_x.shape[0] // x.shape[0]  # tokens per sequence (1 for the pooler)
        # Groups arrive smallest first; the large ones at the end run as dense products with
        # their own masked weight, the rest share the base pass and get sparse corrections.
        split = x.shape[0]
        dense = []
        for group in reversed(groups):
            correction = group.corrections.get(self.name)
            if correction is None or (group.stop - group.start) * per_row < DENSE_MIN_TOKENS:
                break
            dense.append((group, correction))
            split = group.start
        out = flat_x.new_empty(flat_x.shape[0], weight.shape[0])
        if split:
            _linear(flat_x[:split * per_row], weight, bias, out[:split * per_row])
            for group in groups:
                correction = group.corrections.get(self.name)
                if correction is not None and group.stop <= split:
                    rows = flat_x[group.start * per_row:group.stop * per_row]
                    out[group.start * per_row:group.stop * per_row].add_((correction @ rows.T).T)
        for group, correction in dense:
            rows = slice(group.start * per_row, group.stop * per_row)
            _linear(flat_x[rows], weight + correction, bias, out[rows])  # W + S = W ⊙ M, exactly
        return out.view(*x.shape[:-1], weight.shape[0])


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> None:
    if bias is None:
        torch.mm(x, weight.t(), out=out)
    else:
        torch.addmm(bias, x, weight.t(), out=out)


def correction_matrix(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``−(W ⊙ ¬M)`` as a CSR matrix with int32 indices (MKL's fast path on CPU)."""
    removed = ~mask.to(weight.device)
    rows, cols = removed.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=weight.shape[0])
    crow = torch.zeros(weight.shape[0] + 1, dtype=torch.int32, device=weight.device)
    crow[1:] = torch.cumsum(counts, 0)
    values = weight.detach()[rows, cols].neg()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols.to(torch.int32), values, size=tuple(weight.shape),
                                       check_invariants=False)


def correction_bytes(corrections: Mapping[str, torch.Tensor]) -> int:
    """Memory of a task's decoded corrections (indices and values)."""
    total = 0
    for m in corrections.values():
        for part in (m.crow_indices(), m.col_indices(), m.values()):
            total += part.numel() * part.element_size()
    return total


def wrap_for_mixing(root: nn.Module, names: list[str], routing: Routing) -> None:
    """Replace each named ``nn.Linear`` under ``root`` (not yet wrapped) by a ``MixedMaskLinear``."""
    for name in names:
        module = root.get_submodule(name)
        if isinstance(module, MixedMaskLinear):
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"{name} is {type(module).__name__}, expected nn.Linear")
        parent_name, _, attr = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, attr, MixedMaskLinear(module, name, routing))
