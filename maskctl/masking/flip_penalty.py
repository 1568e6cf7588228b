"""``--flip-penalty``: make every flipped mask bit earn its place.

A task's cost, on disk and resident, is the bits its mask flips against the seed's initial mask
(the bundle codes them, a served task holds them). Plain training flips many bits that matter
little: on wnut16 the best masks flip 7-15 % of the masked weights. This pulls back every score
that sits on the other side of the threshold from where it started, by ``lr x strength`` after
each optimizer step: decoupled from Adam's normalisation, as AdamW decouples weight decay. Adam
moves a score by at most about ``lr`` a step, so with strength ``s`` in (0, 1) a flip survives
only where the task's normalised gradient keeps pushing it harder than ``s``: 0 is the paper's
training, 1 keeps almost every bit at its initial value.

The initial side comes from the seed (``initial_mask``), not from the scores at construction,
so a resumed run pulls towards the same mask. On CPU the update runs in numpy (torch's
comparisons are several times slower on the machines measured); elsewhere in torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from maskctl.masking.layer import MaskedLinear, initial_mask


class FlipPenalty:
    """The pull-back of one model's masked layers; ``step(lr)`` after each optimizer step."""

    def __init__(self, layers: dict[str, MaskedLinear], strength: float) -> None:
        if strength < 0:
            raise ValueError(f"flip penalty must be >= 0, got {strength}")
        self.strength = float(strength)
        self.layers = layers
        self.initial = {name: initial_mask(layer) for name, layer in layers.items()}

    @classmethod
    def of(cls, model: nn.Module, strength: float) -> FlipPenalty:
        from maskctl.masking.model import masked_layers

        return cls(masked_layers(model), strength)

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """Move each crossed score ``lr * strength`` back towards its initial side."""
        amount = lr * self.strength
        if not amount:
            return
        for name, layer in self.layers.items():
            scores, initial = layer.scores.data, self.initial[name]
            if scores.device.type == "cpu" and scores.dtype == torch.float32:
                values = scores.numpy()
                now = (values > layer.threshold).view(np.int8)
                direction = np.subtract(now, initial.numpy().view(np.int8), dtype=np.float32)  # +1 on, -1 off
                direction *= np.float32(amount)
                np.subtract(values, direction, out=values)
            else:
                change = (scores > layer.threshold).to(scores.dtype) - initial.to(scores.dtype)
                scores.sub_(change, alpha=amount)
