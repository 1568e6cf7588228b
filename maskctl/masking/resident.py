"""``ResidentModel``: one base model in memory, with bundles' masks applied and removed in place.

Serving many tasks from one model means switching masks without a second copy of the weights.
Applying a mask multiplies it into the weights (exactly what ``maskctl eval`` does, so outputs
agree bit for bit) after saving the few values it zeroes (about 5 % of the masked weights, with
their flat indices); removing it writes those values back, so the resident weights return to
the pretrained ones bit for bit. A bundle's head tensors (the classifier it was trained with)
are swapped in and out the same way.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidentModel:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._zeroed: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> (flat indices, values)
        self._head: dict[str, torch.Tensor] = {}  # param -> value before the bundle's head came in
        self.active: object | None = None

    @torch.no_grad()
    def apply(self, masks: dict[str, torch.Tensor], head: dict[str, torch.Tensor] | None = None,
              key: object | None = None) -> None:
        """Make ``masks`` (and ``head``) current, first undoing whatever was applied before."""
        self.restore()
        params = dict(self.model.named_parameters())
        for name, tensor in (head or {}).items():
            self._head[name] = params[name].detach().clone()
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
        for name, mask in masks.items():
            weight = self.model.get_submodule(name).weight
            mask = mask.to(weight.device)
            flat = weight.view(-1)
            index = (~mask).view(-1).nonzero().squeeze(1)
            self._zeroed[name] = (index, flat[index].clone())
            weight.mul_(mask.to(weight.dtype))
        self.active = key

    @torch.no_grad()
    def restore(self) -> None:
        """Put back every value the current mask and head replaced (bit-exact)."""
        for name, (index, values) in self._zeroed.items():
            self.model.get_submodule(name).weight.view(-1)[index] = values
        params = dict(self.model.named_parameters()) if self._head else {}
        for name, value in self._head.items():
            params[name].copy_(value)
        self._zeroed.clear()
        self._head.clear()
        self.active = None
