"""Merged mode: one task's mask multiplied into the resident weights (and its tuned deltas
added), and put back bit for bit.

Why: a run of single-task batches is then a plain dense forward (the speed of a merged model)
instead of the pristine pass plus a sparse correction. Only the zeroed positions and their
values are kept, so undoing the merge restores the pristine weights exactly; everything that
reads the pristine weights (fingerprints, corrections, mixed batches) unmerges first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from maskctl.masking.resident import Zeroed, multiply_in, put_back
from maskctl.masking.tuned import Swapped, add_deltas, put_back_values


class MergedWeights:
    """Which task (if any) is multiplied into ``layers``' weights, and what to put back."""

    def __init__(self, layers: dict[str, torch.nn.Module], root: torch.nn.Module) -> None:
        self.layers = layers  # MixedMaskLinear by encoder-relative name (shared with the model)
        self.root = root  # the encoder those names (and tuned parameters' names) are relative to
        self.task: str | None = None
        self._saved: list[Zeroed] = []
        self._swapped: list[Swapped] = []

    @torch.no_grad()
    def merge(self, name: str, masks: Callable[[], dict[str, torch.Tensor]],
              deltas: dict[str, torch.Tensor] | None = None) -> None:
        """Multiply ``name``'s masks (decoded by ``masks()`` only when not merged already) in and
        add its tuned ``deltas`` (by encoder-relative name: ``<module>.weight`` / ``.bias``)."""
        if self.task == name:
            return
        self.unmerge()
        self._saved = [multiply_in(self.layers[inner].weight, mask) for inner, mask in masks().items()]
        self._swapped = add_deltas(self.root, deltas or {})
        self.task = name

    @torch.no_grad()
    def unmerge(self) -> None:
        """Put the zeroed values and the tuned parameters back: the pristine weights, bit for bit."""
        put_back(self._saved)
        put_back_values(self._swapped)
        self._saved, self._swapped, self.task = [], [], None
