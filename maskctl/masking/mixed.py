"""The mixed-mask forward: one batch whose rows belong to different tasks, one base pass.

A masked linear computes ``x (W ⊙ Mₜ)ᵀ``. Write ``Mₜ = R + Δₜ`` for a reference mask ``R``
shared by many tasks; then ``x (W ⊙ Mₜ)ᵀ = x (W ⊙ R)ᵀ + x Cₜᵀ`` with ``Cₜ = W ⊙ Δₜ``, a sparse
matrix. The first term is one dense product for the rows of every task sharing ``R``; each
task's rows then add their own sparse term. Two references are used:

- the **initial mask** of the tasks' seed (tasks trained with the same seed, threshold and
  initial sparsity start from the same mask, regenerated from the bundle): ``Cₜ`` holds only
  the bits training flipped (~1-4 % of the weights), at the price of one dense ``W ⊙ R`` copy
  of the masked layers per such seed (``MixedMaskLinear.references``);
- else the **all-ones** mask: the pristine resident ``W`` itself, ``Cₜ = −W ⊙ ¬Mₜ`` (the ~5 % of
  weights the mask removes).

The shared weights are never written, so requests of any mix of tasks run together (S-LoRA's /
Punica's "base pass + per-adapter term on its rows", with a sparse term in place of a low-rank
one). Groups with many token rows (long texts, several requests of one task) instead run one
dense product with their own weight ``W ⊙ R + Cₜ = W ⊙ Mₜ`` (exact, built in ~0.1 ms from the
sparse matrix): the sparse term costs a roughly fixed share of the output, the dense one a
weight-sized pass per group. ``DENSE_MIN_TOKENS`` switches between them, chosen from
measurements (BENCHMARKS.md, "Serving many tasks").

``MixedMaskLinear`` wraps a ``base_layer`` (PEFT's pattern) and reads the current batch's row
groups from a shared ``Routing``; outside a routed call it is the plain base layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from maskctl.masking.layer import WrappedLinear

# From this many token rows on, a task's rows use a dense product with their own weight; below
# it they share the base pass and add ``x Cᵀ``. Measured on this machine's CPU (MiniLM's FFN
# matrix, 16 groups, one thread): the sparse term adds ~35 % whatever the group size, the dense
# one +200 % at 8 rows, +24 % at 48, +6 % at 128.
DENSE_MIN_TOKENS = 64


@dataclass(frozen=True)
class Correction:
    """One task's term for one layer: ``matrix`` (CSR) against the reference ``reference``
    (a key of ``MixedMaskLinear.references``; None: the pristine weight)."""

    matrix: torch.Tensor
    reference: Hashable | None = None


@dataclass(frozen=True)
class RowGroup:
    """Rows ``start:stop`` of the batch (dimension 0) and their task's corrections by layer."""

    start: int
    stop: int
    corrections: Mapping[str, Correction]


class Routing:
    """The row groups of the batch being computed; empty outside ``route``."""

    def __init__(self) -> None:
        self.groups: tuple[RowGroup, ...] = ()

    @contextlib.contextmanager
    def route(self, groups: list[RowGroup]) -> Iterator[None]:
        self.groups = tuple(groups)
        try:
            yield
        finally:
            self.groups = ()


class MixedMaskLinear(WrappedLinear):
    """A frozen linear that computes each row group with its own task's mask."""

    def __init__(self, base_layer: nn.Linear, name: str, routing: Routing) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.name = name  # the key of this layer in a task's corrections
        self.routing = routing
        self.references: dict[Hashable, torch.Tensor] = {}  # key -> W ⊙ R (not parameters)

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(g.corrections.get(self.name) for g in self.routing.groups):
            return self.base_layer(x)
        weight, bias = self.base_layer.weight, self.base_layer.bias
        flat_x = x.reshape(-1, x.shape[-1])
        per_row = flat_x.shape[0] // x.shape[0]  # tokens per sequence (1 for the pooler)
        out = flat_x.new_empty(flat_x.shape[0], weight.shape[0])
        for start, stop, base, terms in self._runs(per_row):
            rows = slice(start * per_row, stop * per_row)
            _linear(flat_x[rows], base, bias, out[rows])
            for first, last, matrix in terms:
                part = slice(first * per_row, last * per_row)
                out[part].add_((matrix @ flat_x[part].T).T)
        return out.view(*x.shape[:-1], weight.shape[0])

    def _runs(self, per_row: int) -> list[tuple[int, int, torch.Tensor, list]]:
        """Consecutive groups sharing one base weight, as (first row, end row, weight, sparse
        terms); a large group gets a run of its own with its exact masked weight."""
        runs: list[tuple[int, int, torch.Tensor, list]] = []
        last_key: object = object()
        for group in self.routing.groups:
            correction = group.corrections.get(self.name)
            key = None if correction is None else correction.reference
            base = self.weight if key is None else self.references[key]
            if correction is not None and (group.stop - group.start) * per_row >= DENSE_MIN_TOKENS:
                runs.append((group.start, group.stop, base + correction.matrix, []))
                last_key = object()
                continue
            if runs and key == last_key and runs[-1][1] == group.start:
                first, _, weight, terms = runs[-1]
                runs[-1] = (first, group.stop, weight, terms)
            else:
                runs.append((group.start, group.stop, base, []))
            if correction is not None:
                runs[-1][3].append((group.start, group.stop, correction.matrix))
            last_key = key
        return runs


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> None:
    if bias is None:
        torch.mm(x, weight.t(), out=out)
    else:
        torch.addmm(bias, x, weight.t(), out=out)


def csr(dense_positions: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A CSR matrix with int32 indices (MKL's fast path on CPU) from row-major (row, col) pairs."""
    rows, cols = dense_positions
    crow = torch.zeros(shape[0] + 1, dtype=torch.int32, device=values.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product used here is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols.to(torch.int32), values, size=shape, check_invariants=False)


def correction_matrix(weight: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """``W ⊙ (M − R)`` as CSR: ``−W`` where the mask removes a weight the reference keeps, ``+W``
    where it keeps one the reference removes. ``reference`` None: the all-ones mask."""
    mask = mask.to(weight.device)
    reference = torch.ones_like(mask) if reference is None else reference.to(weight.device)
    positions = (mask != reference).nonzero(as_tuple=True)
    values = weight.detach()[positions]
    values = torch.where(mask[positions], values, values.neg())
    return csr(positions, values, tuple(weight.shape))


def correction_bytes(corrections: Mapping[str, Correction]) -> int:
    """Memory of a task's decoded corrections (indices and values)."""
    total = 0
    for c in corrections.values():
        for part in (c.matrix.crow_indices(), c.matrix.col_indices(), c.matrix.values()):
            total += part.numel() * part.element_size()
    return total


def wrap_for_mixing(root: nn.Module, names: list[str], routing: Routing) -> dict[str, MixedMaskLinear]:
    """Replace each named ``nn.Linear`` under ``root`` by a ``MixedMaskLinear`` (once); return them."""
    layers = {}
    for name in names:
        module = root.get_submodule(name)
        if not isinstance(module, MixedMaskLinear):
            if not isinstance(module, nn.Linear):
                raise ValueError(f"{name} is {type(module).__name__}, expected nn.Linear")
            parent_name, _, attr = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            module = MixedMaskLinear(module, name, routing)
            setattr(parent, attr, module)
        layers[name] = module
    return layers
