"""What ``MaskedModel`` keeps per loaded task (``ServedTask``): the task, its masks in the form
its serving path reads (coded as the bundle stores them, or flipped positions for the kernel),
its head with the head masks multiplied in, and its encoding settings.

Why its own module: the batcher, the memory bookkeeping and the model all hold tasks, and none
of them owns what a task is; ``memory`` says how small the masks are kept, ``batching`` how a
task's requests join a mixed batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from maskctl.bundle.format import CodedMasks
from maskctl.choices import MAX_LENGTH
from maskctl.masking.flips import mask_from_flips, nonzero_mask
from maskctl.masking.mixed import Correction
from maskctl.tasks.task import Task

Corrections = dict[str, Correction]  # encoder layer name -> the task's term for it


@dataclass
class ServedTask:
    """One loaded task: its card, masks (coded, or flips for the kernel), effective head and
    encoding settings."""

    name: str
    task: Task
    coded: CodedMasks
    head: dict[str, torch.Tensor]  # head parameters with the bundle's head masks multiplied in
    encoder_layers: dict[str, str]  # bundle mask name -> name inside the shared encoder
    net_key: tuple[str, int]  # (auto class, number of labels): the task model its head runs in
    reference: tuple | None  # (seed, threshold, init_sparsity) of its initial mask, shared by such tasks
    max_length: int = MAX_LENGTH
    options: dict[str, Any] = field(default_factory=dict)
    flips: Corrections | None = None  # held instead of the encoder layers' coded masks (kernel path)

    @property
    def meta(self) -> dict[str, Any]:
        return self.coded.meta

    def coded_bytes(self) -> int:
        """Coded masks (none for the encoder layers once flips are held) and head tensors."""
        return self.coded.nbytes + sum(t.numel() * t.element_size() for t in self.head.values())

    def flips_bytes(self) -> int:
        return sum(c.nbytes for c in self.flips.values()) if self.flips else 0

    def encoder_masks(self, layers: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The masks of the encoder layers, keyed by encoder-relative name: decoded (CRC-checked)
        from the coded form, or rebuilt from held flips and the reference weights of ``layers``
        (``MixedMaskLinear`` by encoder-relative name)."""
        if self.flips is None:
            return {inner: self.coded.decode(name) for name, inner in self.encoder_layers.items()}
        out = {}
        for inner, correction in self.flips.items():
            key = correction.reference
            out[inner] = mask_from_flips(correction.flips, None if key is None else nonzero_mask(layers[inner].references[key]))
        return out
