"""Merged mode: one task's mask multiplied into the resident weights, and put back bit for bit.

Why: a run of single-task batches is then a plain dense forward (the speed of a merged model)
instead of the pristine pass plus a sparse correction. Only the zeroed positions and their
values are kept, so undoing the merge restores the pristine weights exactly; everything that
reads the pristine weights (fingerprints, corrections, mixed batches) unmerges first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class MergedWeights:
    """Which task (if any) is multiplied into ``layers``' weights, and what to put back."""

    def __init__(self, layers: dict[str, torch.nn.Module]) -> None:
        self.layers = layers  # MixedMaskLinear by encoder-relative name (shared with the model)
        self.task: str | None = None
        self._saved: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def merge(self, name: str, masks: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Multiply ``name``'s masks (decoded by ``masks()`` only when not merged already) in."""
        if self.task == name:
            return
        self.unmerge()
        for inner, mask in masks().items():
            flat = self.layers[inner].weight.view(-1)
            positions = (~mask.to(flat.device)).view(-1).nonzero().squeeze(1)
            self._saved[inner] = (positions, flat[positions].clone())
            flat.index_fill_(0, positions, 0.0)
        self.task = name

    @torch.no_grad()
    def unmerge(self) -> None:
        """Put the zeroed values back: the pristine weights, bit for bit."""
        for inner, (positions, values) in self._saved.items():
            self.layers[inner].weight.view(-1).index_copy_(0, positions, values)
        self._saved, self.task = {}, None
