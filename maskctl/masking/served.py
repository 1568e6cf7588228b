"""The one owner of how a served task's mask is applied at inference: ``ServedLinear``.

As PEFT's tuner layers do, a ``ServedLinear`` wraps its ``base_layer`` and holds every task's
state for that layer, behind one contract:

- ``rebase(key, mask)``: once, before any task: the weight becomes ``W ⊙ R`` in place and the
  values ``R`` removes move to ``Removed`` (one copy of the weights; ``masking.flips``);
- ``encode(mask)`` / ``add_task(name, flips, bias_delta)`` / ``remove_task(name)``: a task's
  flips against ``R`` (its only state here) and its tuned bias delta (``--also-train``);
- ``merge(name)`` / ``unmerge()``: the task's flips written into the weight in place and undone
  bit for bit (a run of single-task batches then runs at a merged model's speed);
- ``forward``: the rows of each task of a mixed batch (``Routing``): one dense product on the
  shared ``W ⊙ R`` for every short group plus each group's term ``x Cₜᵀ`` from its flips (the
  compiled kernel, ``masking.kernels``), while a long group's flips are written in, its rows
  multiplied densely and the flips undone (scatter-merge, cheaper than the term from
  ``DENSE_MIN_TOKENS`` rows on);
- ``nbytes(name)``, ``pristine()`` (``W`` itself, e.g. for fingerprints).

``ServedLayerNorm`` does the same for tuned LayerNorms: a group's rows are recomputed with the
task's weight and bias, the merged model's very operation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from maskctl.masking import kernels
from maskctl.masking.flips import Flips, Removed, encode
from maskctl.masking.layer import WrappedLinear, replace_submodule
from maskctl.masking.tuned import tuned_value

# From this many token rows on, a group runs as its own dense product on its exact weight
# (flips written in and undone) instead of adding its term to the shared product. Measured in
# the whole model, not per layer: writing the flips in and out costs more there than alone (the
# weight has left the cache between layers) and the shared product is split, so the term wins
# up to a few hundred rows (BENCHMARKS.md, "Serving many tasks": long groups).
DENSE_MIN_TOKENS = 512


@dataclass(frozen=True)
class Group:
    """Rows ``start:stop`` of the batch (dimension 0: sequences) belong to ``task``."""

    start: int
    stop: int
    task: str


class Routing:
    """The row groups of the batch being computed; empty outside ``route`` (then every served
    layer is its base layer, with a merged task's weight if one is merged)."""

    def __init__(self) -> None:
        self.groups: tuple[Group, ...] = ()

    @contextlib.contextmanager
    def route(self, groups: list[Group]) -> Iterator[None]:
        self.groups = tuple(groups)
        try:
            yield
        finally:
            self.groups = ()


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


class ServedLinear(WrappedLinear):
    """A frozen linear serving many tasks' masks over one weight (see the module docstring)."""

    def __init__(self, base_layer: nn.Linear, name: str, routing: Routing) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.name = name  # encoder-relative: the key of this layer in a task's masks
        self.routing = routing
        self.reference: Hashable | None = None  # the key of R (None: all ones, the weight is W)
        self.removed = Removed.none(base_layer.out_features)
        self.flips: dict[str, Flips] = {}
        self.bias_deltas: dict[str, torch.Tensor] = {}
        self._merged: tuple[str, torch.Tensor | None, torch.Tensor | None] | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    # -- the reference ---------------------------------------------------------------------
    @torch.no_grad()
    def rebase(self, key: Hashable, mask: np.ndarray, removed: Removed | None = None) -> None:
        """Hold ``W ⊙ R`` for the reference mask ``mask`` (bool), before any task is added
        (``removed``: what it removes from the pristine weight, when the caller has it)."""
        if self.flips or self.bias_deltas or self.reference is not None:
            raise RuntimeError(f"{self.name}: a layer is rebased once, before its first task")
        weight = self.base_layer.weight
        self.removed = removed if removed is not None else Removed.of(_numpy(weight), mask)
        weight.masked_fill_(torch.from_numpy(~mask).to(weight.device), 0.0)
        self.reference = key

    def reference_mask(self) -> np.ndarray:
        rows, cols = self.base_layer.weight.shape
        return self.removed.mask((rows, cols))

    @contextlib.contextmanager
    def pristine(self) -> Iterator[None]:
        """The pristine weight ``W`` in place for the duration (no task merged meanwhile)."""
        self.unmerge()
        if not self.removed.count:
            yield
            return
        weight = self.base_layer.weight.data
        if weight.device.type == "cpu":  # numpy's fancy assignment: ~20x torch's index_put here
            view, positions = weight.numpy(), self.removed.positions()
            view[positions] = self.removed.values
            try:
                yield
            finally:
                view[positions] = 0.0
            return
        rows, cols = (torch.from_numpy(p).to(weight.device) for p in self.removed.positions())
        weight[rows, cols] = torch.from_numpy(self.removed.values).to(weight.device, weight.dtype)
        try:
            yield
        finally:
            weight[rows, cols] = 0.0

    # -- tasks -------------------------------------------------------------------------------
    def encode(self, mask: np.ndarray | None, reference: np.ndarray | None = None) -> Flips | None:
        """A task's flips here: ``mask`` (bool; None: the task does not mask this layer, i.e.
        all ones) against the reference (``reference``: that mask, when the caller has it)."""
        if mask is None:
            if not self.removed.count:
                return None
            mask = np.ones(tuple(self.base_layer.weight.shape), dtype=bool)
        flips = encode(mask, self.reference_mask() if reference is None else reference, self.removed)
        return flips if flips.count else None

    def add_task(self, name: str, flips: Flips | None, bias_delta: torch.Tensor | None = None) -> None:
        self.remove_task(name)
        if flips is not None:
            self.flips[name] = flips
        if bias_delta is not None:
            self.bias_deltas[name] = bias_delta

    def remove_task(self, name: str) -> None:
        if self._merged is not None and self._merged[0] == name:
            self.unmerge()
        self.flips.pop(name, None)
        self.bias_deltas.pop(name, None)

    def nbytes(self, name: str) -> int:
        """What the task holds here: its flips and bias delta."""
        flips, delta = self.flips.get(name), self.bias_deltas.get(name)
        return (flips.nbytes if flips else 0) + (delta.numel() * delta.element_size() if delta is not None else 0)

    def idle(self) -> bool:
        """No task, nothing merged and no reference: the layer is its base layer."""
        return not self.flips and not self.bias_deltas and self._merged is None and self.reference is None

    # -- merged mode -------------------------------------------------------------------------
    @torch.no_grad()
    def merge(self, name: str) -> None:
        """The task's exact weight (and tuned bias) in place, until ``unmerge``."""
        if self._merged is not None and self._merged[0] == name:
            return
        self.unmerge()
        flips, delta = self.flips.get(name), self.bias_deltas.get(name)
        saved = kernels.apply(flips, self.base_layer.weight, self.removed) if flips is not None else None
        old_bias = None
        if delta is not None:
            old_bias = self.base_layer.bias.detach().clone()
            self.base_layer.bias.copy_(tuned_value(old_bias, delta))
        self._merged = (name, saved, old_bias)

    @torch.no_grad()
    def unmerge(self) -> None:
        if self._merged is None:
            return
        name, saved, old_bias = self._merged
        if saved is not None:
            kernels.undo(self.flips[name], self.base_layer.weight, self.removed, saved)
        if old_bias is not None:
            self.base_layer.bias.copy_(old_bias)
        self._merged = None

    # -- mixed batches -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.routing.groups
        if not groups or not (self.flips or self.bias_deltas):
            return self.base_layer(x)
        weight, bias = self.base_layer.weight, self.base_layer.bias
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        per_row = flat.shape[0] // x.shape[0]  # tokens per sequence (1 for the pooler)
        out = flat.new_empty(flat.shape[0], weight.shape[0])
        terms: list[tuple[Flips, int, int]] = []
        shared = [0, 0]  # rows of the current stretch on the shared weight
        for group in groups:
            start, stop = group.start * per_row, group.stop * per_row
            flips = self.flips.get(group.task)
            if flips is not None and stop - start >= DENSE_MIN_TOKENS:
                _linear(flat, weight, bias, out, *shared)
                shared = [stop, stop]
                saved = kernels.apply(flips, weight, self.removed)
                try:
                    _linear(flat, weight, bias, out, start, stop)
                finally:
                    kernels.undo(flips, weight, self.removed, saved)
                continue
            shared[1] = stop
            if flips is not None:
                terms.append((flips, start, stop))
        _linear(flat, weight, bias, out, *shared)
        if terms:
            kernels.add_terms(terms, weight, self.removed, flat, out)
        for group in groups:
            delta = self.bias_deltas.get(group.task)
            if delta is not None:
                out[group.start * per_row : group.stop * per_row].add_(delta.to(out.dtype))
        return out.view(*x.shape[:-1], weight.shape[0])


def _linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor, start: int, stop: int
) -> None:
    if stop <= start:
        return
    if bias is None:
        torch.mm(x[start:stop], weight.t(), out=out[start:stop])
    else:
        torch.addmm(bias, x[start:stop], weight.t(), out=out[start:stop])


class ServedLayerNorm(nn.Module):
    """A frozen LayerNorm whose tasks may hold tuned weight and bias deltas."""

    def __init__(self, base_layer: nn.LayerNorm, name: str, routing: Routing) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.name = name
        self.routing = routing
        self.deltas: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]] = {}
        self._merged: tuple[str, list[tuple[nn.Parameter, torch.Tensor]]] | None = None

    def add_task(self, name: str, weight_delta: torch.Tensor | None, bias_delta: torch.Tensor | None) -> None:
        self.remove_task(name)
        if weight_delta is not None or bias_delta is not None:
            self.deltas[name] = (weight_delta, bias_delta)

    def remove_task(self, name: str) -> None:
        if self._merged is not None and self._merged[0] == name:
            self.unmerge()
        self.deltas.pop(name, None)

    def nbytes(self, name: str) -> int:
        return sum(t.numel() * t.element_size() for t in self.deltas.get(name, ()) if t is not None)

    def idle(self) -> bool:
        """No task and nothing merged: the layer is its base layer."""
        return not self.deltas and self._merged is None

    @torch.no_grad()
    def merge(self, name: str) -> None:
        if self._merged is not None and self._merged[0] == name:
            return
        self.unmerge()
        swapped = []
        for param, delta in zip((self.base_layer.weight, self.base_layer.bias), self.deltas.get(name, (None, None))):
            if delta is not None:
                swapped.append((param, param.detach().clone()))
                param.copy_(tuned_value(param, delta))
        self._merged = (name, swapped)

    @torch.no_grad()
    def unmerge(self) -> None:
        if self._merged is not None:
            for param, value in self._merged[1]:
                param.copy_(value)
            self._merged = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        base = self.base_layer
        for group in self.routing.groups:
            weight_delta, bias_delta = self.deltas.get(group.task, (None, None))
            if weight_delta is None and bias_delta is None:
                continue
            weight = base.weight if weight_delta is None else tuned_value(base.weight, weight_delta)
            bias = base.bias if bias_delta is None else tuned_value(base.bias, bias_delta)
            rows = slice(group.start, group.stop)
            out[rows] = functional.layer_norm(x[rows], base.normalized_shape, weight, bias, base.eps)
        return out


def wrap_for_serving(root: nn.Module, names: list[str], routing: Routing) -> dict[str, ServedLinear | ServedLayerNorm]:
    """Replace each named ``nn.Linear`` under ``root`` by a ``ServedLinear`` and each named
    ``nn.LayerNorm`` by a ``ServedLayerNorm`` (once); return them by name."""
    layers: dict[str, ServedLinear | ServedLayerNorm] = {}
    for name in names:
        module = root.get_submodule(name)
        if isinstance(module, (ServedLinear, ServedLayerNorm)):
            layers[name] = module
            continue
        served: ServedLinear | ServedLayerNorm
        if isinstance(module, nn.Linear):
            served = ServedLinear(module, name, routing)
        elif isinstance(module, nn.LayerNorm):
            served = ServedLayerNorm(module, name, routing)
        else:
            raise ValueError(f"{name} is {type(module).__name__}, expected nn.Linear or nn.LayerNorm")
        replace_submodule(root, name, served)
        layers[name] = served
    return layers


def unwrap_served(root: nn.Module, names: list[str]) -> None:
    """Put each named served layer's ``base_layer`` back in its place (PEFT's ``unload``), once
    it holds no task, no merged weight and no reference: the model is the plain model again."""
    for name in names:
        module = root.get_submodule(name)
        if not isinstance(module, (ServedLinear, ServedLayerNorm)):
            continue
        if not module.idle():
            raise RuntimeError(f"{name}: unmerge and remove its tasks before unwrapping")
        replace_submodule(root, name, module.base_layer)
