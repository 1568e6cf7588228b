"""Merged mode: one task's mask multiplied into the resident weights, and put back bit for bit.

Why: a run of single-task batches is then a plain dense forward (the speed of a merged model)
instead of the pristine pass plus a sparse correction. Only the zeroed positions and their
values are kept, so undoing the merge restores the pristine weights exactly; everything that
reads the pristine weights (fingerprints, corrections, mixed batches) unmerges first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from maskctl.masking.resident import Zeroed, multiply_in, put_back


class MergedWeights:
    """Which task (if any) is multiplied into ``layers``' weights, and what to put back."""

    def __init__(self, layers: dict[str, torch.nn.Module]) -> None:
        self.layers = layers  # MixedMaskLinear by encoder-relative name (shared with the model)
        self.task: str | None = None
        self._saved: list[Zeroed] = []

    @torch.no_grad()
    def merge(self, name: str, masks: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Multiply ``name``'s masks (decoded by ``masks()`` only when not merged already) in."""
        if self.task == name:
            return
        self.unmerge()
        self._saved = [multiply_in(self.layers[inner].weight, mask) for inner, mask in masks().items()]
        self.task = name

    @torch.no_grad()
    def unmerge(self) -> None:
        """Put the zeroed values back: the pristine weights, bit for bit."""
        put_back(self._saved)
        self._saved, self.task = [], None
