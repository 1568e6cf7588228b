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

A task that also tuned biases or LayerNorms (``--also-train``, ``masking/tuned.py``) adds its
bias deltas to its own rows, and ``MixedLayerNorm`` recomputes its rows with the task's LayerNorm
weight and bias (the merged model's very operation, so those rows match it bit for bit).

``MixedMaskLinear`` and ``MixedLayerNorm`` wrap a ``base_layer`` (PEFT's pattern) and read the
current batch's row groups from a shared ``Routing``; outside a routed call they are the plain
base layer.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional

from maskctl.masking.flips import FlipRows, add_flip_terms, flip_values, flipped_weight
from maskctl.masking.layer import WrappedLinear
from maskctl.masking.tuned import tuned_value

# From this many token rows on, a task's rows use a dense product with their own weight; below
# it they share the base pass and add ``x Cᵀ``. Measured on this machine's CPU (MiniLM's FFN
# matrix, 16 groups, one thread): the sparse term adds ~35 % whatever the group size, the dense
# one +200 % at 8 rows, +24 % at 48, +6 % at 128.
DENSE_MIN_TOKENS = 64


@dataclass(frozen=True)
class Correction:
    """One task's term for one layer against the reference ``reference`` (a key of
    ``MixedMaskLinear.references``; None: the pristine weight): either its flipped positions
    (``flips``, read by the compiled kernel with values gathered from the weights) or a CSR
    ``matrix`` holding the values too (the plain-PyTorch path)."""

    matrix: torch.Tensor | None = None
    reference: Hashable | None = None
    flips: FlipRows | None = None

    @property
    def nbytes(self) -> int:
        if self.flips is not None:
            return self.flips.nbytes
        parts = (self.matrix.crow_indices(), self.matrix.col_indices(), self.matrix.values())
        return sum(part.numel() * part.element_size() for part in parts)

    def as_matrix(self, weight: torch.Tensor, reference: torch.Tensor | None) -> Correction:
        """The same term as a CSR matrix (values gathered from the pristine ``weight`` and the
        reference weight ``W ⊙ R``): MKL's product is faster than the kernel on short groups."""
        if self.flips is None:
            return self
        rows, cols, values = flip_values(self.flips, weight, reference)
        return Correction(csr((torch.from_numpy(rows), torch.from_numpy(cols)), torch.from_numpy(values),
                              tuple(weight.shape)),
                          self.reference)

    @property
    def matrix_nbytes(self) -> int:
        """What ``as_matrix`` will hold: 8 bytes per flip and 4 per row."""
        if self.flips is None:
            return self.nbytes
        return self.flips.count * 8 + (self.flips.shape[0] + 1) * 4

    def exact_weight(self, weight: torch.Tensor, base: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        """The task's own weight ``base + C`` (dense), for a group with many token rows."""
        if self.flips is not None:
            return flipped_weight(self.flips, weight, base, reference)
        return base + self.matrix


@dataclass(frozen=True)
class Term:
    """Rows ``first:last`` of the batch (in sequences) add ``correction``'s term."""

    first: int
    last: int
    correction: Correction


@dataclass
class Run:
    """Consecutive rows sharing one base weight, and the terms their groups add."""

    start: int
    stop: int
    weight: torch.Tensor
    terms: list[Term]


@dataclass(frozen=True)
class RowGroup:
    """Rows ``start:stop`` of the batch (dimension 0), their task's corrections by layer and its
    tuned deltas by parameter (float16; names relative to the routed module's root)."""

    start: int
    stop: int
    corrections: Mapping[str, Correction]
    deltas: Mapping[str, torch.Tensor] = field(default_factory=dict)


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
        bias_key = f"{self.name}.bias"
        if not any(g.corrections.get(self.name) or bias_key in g.deltas for g in self.routing.groups):
            return self.base_layer(x)
        weight, bias = self.base_layer.weight, self.base_layer.bias
        flat_x = x.reshape(-1, x.shape[-1])
        per_row = flat_x.shape[0] // x.shape[0]  # tokens per sequence (1 for the pooler)
        out = flat_x.new_empty(flat_x.shape[0], weight.shape[0])
        compact: dict[Hashable | None, list[tuple[FlipRows, int, int]]] = {}
        for run in self._runs(per_row):
            _linear(flat_x[run.start * per_row:run.stop * per_row], run.weight, bias,
                    out[run.start * per_row:run.stop * per_row])
            for term in run.terms:
                first, last = term.first * per_row, term.last * per_row
                if term.correction.flips is not None:
                    compact.setdefault(term.correction.reference, []).append((term.correction.flips, first, last))
                else:
                    out[first:last].add_((term.correction.matrix @ flat_x[first:last].T).T)
        for key, groups in compact.items():  # one kernel call per layer and reference
            add_flip_terms(groups, weight, None if key is None else self.references[key], flat_x, out)
        for group in self.routing.groups:  # --also-train: the task's bias on its own rows
            if bias_key in group.deltas:
                out[group.start * per_row:group.stop * per_row].add_(group.deltas[bias_key])
        return out.view(*x.shape[:-1], weight.shape[0])

    def _runs(self, per_row: int) -> list[Run]:
        """Consecutive groups sharing one base weight; a large group gets a run of its own
        with its exact masked weight."""
        runs: list[Run] = []
        last_key: object = object()
        for group in self.routing.groups:
            correction = group.corrections.get(self.name)
            key = None if correction is None else correction.reference
            reference = None if key is None else self.references[key]
            base = self.weight if key is None else reference
            if correction is not None and (group.stop - group.start) * per_row >= DENSE_MIN_TOKENS:
                runs.append(Run(group.start, group.stop, correction.exact_weight(self.weight, base, reference), []))
                last_key = object()
                continue
            if runs and key == last_key and runs[-1].stop == group.start:
                runs[-1].stop = group.stop
            else:
                runs.append(Run(group.start, group.stop, base, []))
            if correction is not None:
                runs[-1].terms.append(Term(group.start, group.stop, correction))
            last_key = key
        return runs


class MixedLayerNorm(nn.Module):
    """A frozen LayerNorm whose row groups with tuned deltas use the task's own weight and bias."""

    def __init__(self, base_layer: nn.LayerNorm, name: str, routing: Routing) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.keys = (f"{name}.weight", f"{name}.bias")  # this layer's entries in a group's deltas
        self.routing = routing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        base = self.base_layer
        for group in self.routing.groups:
            weight_delta, bias_delta = (group.deltas.get(key) for key in self.keys)
            if weight_delta is None and bias_delta is None:
                continue
            weight = base.weight if weight_delta is None else tuned_value(base.weight, weight_delta)
            bias = base.bias if bias_delta is None else tuned_value(base.bias, bias_delta)
            rows = slice(group.start, group.stop)
            out[rows] = functional.layer_norm(x[rows], base.normalized_shape, weight, bias, base.eps)
        return out


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
    """Memory of a task's decoded corrections (flipped positions, or CSR indices and values)."""
    return sum(c.nbytes for c in corrections.values())


def wrap_for_mixing(root: nn.Module, names: list[str], routing: Routing) -> dict[str, nn.Module]:
    """Replace each named ``nn.Linear`` under ``root`` by a ``MixedMaskLinear`` and each named
    ``nn.LayerNorm`` by a ``MixedLayerNorm`` (once); return them."""
    layers = {}
    for name in names:
        module = root.get_submodule(name)
        if not isinstance(module, (MixedMaskLinear, MixedLayerNorm)):
            wrapper = (MixedMaskLinear if isinstance(module, nn.Linear) else
                       MixedLayerNorm if isinstance(module, nn.LayerNorm) else None)
            if wrapper is None:
                raise ValueError(f"{name} is {type(module).__name__}, expected nn.Linear or nn.LayerNorm")
            parent_name, _, attr = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            module = wrapper(module, name, routing)
            setattr(parent, attr, module)
        layers[name] = module
    return layers
