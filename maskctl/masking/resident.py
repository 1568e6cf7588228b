"""``ResidentModel``: one base model in memory, with bundles' masks applied and removed in place.

Serving many tasks from one model means switching masks without a second copy of the weights.
Applying a mask multiplies it into the weights (exactly what ``maskctl eval`` does, so outputs
agree bit for bit) after saving the few values it zeroes (about 5 % of the masked weights, with
their flat indices); removing it writes those values back, so the resident weights return to
the pretrained ones bit for bit. A bundle's head tensors (the classifier it was trained with)
and tuned deltas (``--also-train``: biases and LayerNorms) are swapped in and out the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from maskctl.masking.tuned import Swapped, add_deltas, put_back_values

Zeroed = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (weight, flat index, values it held)


@torch.no_grad()
def multiply_in(weight: torch.Tensor, mask: torch.Tensor) -> Zeroed:
    """``weight *= mask`` in place (as ``apply_masks``: merged outputs equal ``maskctl eval``'s
    bit for bit), returning what ``put_back`` needs to undo it."""
    mask = mask.to(weight.device)
    index = (~mask).view(-1).nonzero().squeeze(1)
    saved = (weight, index, weight.view(-1)[index].clone())
    weight.mul_(mask.to(weight.dtype))
    return saved


@torch.no_grad()
def put_back(zeroed: list[Zeroed]) -> None:
    """Write back every value ``multiply_in`` zeroed: the weights as they were, bit for bit."""
    for weight, index, values in zeroed:
        weight.view(-1)[index] = values


class ResidentModel:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._zeroed: list[Zeroed] = []
        self._swapped: list[Swapped] = []  # (parameter, value before the bundle's head or delta)
        self.active: object | None = None

    @torch.no_grad()
    def apply(self, masks: dict[str, torch.Tensor], head: dict[str, torch.Tensor] | None = None,
              key: object | None = None, model: nn.Module | None = None,
              tuned: dict[str, torch.Tensor] | None = None) -> None:
        """Make ``masks`` (and ``head``, and the ``tuned`` deltas) current, first undoing whatever
        was applied before.

        Names resolve in ``model`` (default: the resident model), e.g. a task model of another
        kind that shares the resident encoder.
        """
        self.restore()
        model = model if model is not None else self.model
        params = dict(model.named_parameters())
        for name, tensor in (head or {}).items():
            param = params[name]
            self._swapped.append((param, param.detach().clone()))
            param.copy_(tensor.to(param.device, param.dtype))
        self._swapped += add_deltas(model, tuned or {})
        self._zeroed = [multiply_in(model.get_submodule(name).weight, mask) for name, mask in masks.items()]
        self.active = key

    @torch.no_grad()
    def restore(self) -> None:
        """Put back every value the current mask and head replaced (bit-exact)."""
        put_back(self._zeroed)
        put_back_values(self._swapped)
        self._zeroed.clear()
        self._swapped.clear()
        self.active = None

    def saved_bytes(self) -> int:
        """Memory held to undo the current mask: the zeroed values and their indices."""
        return sum(i.numel() * i.element_size() + v.numel() * v.element_size() for _, i, v in self._zeroed)
