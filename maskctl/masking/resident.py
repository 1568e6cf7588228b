"""``ResidentModel``: one base model in memory, with bundles' masks applied and removed in place.

Scoring several bundles of one task on one model (``maskctl ensemble``) means switching masks
without a second copy of the weights. Each masked linear becomes a ``ServedLinear``
(``masking.served``, the one owner of how a mask is applied at inference) holding the current
bundle as its one task, merged: the task's weight bit for bit what ``maskctl eval`` multiplies
in, and undone bit for bit. A bundle's head tensors (the classifier it was trained with) and
tuned deltas (``--also-train``: biases and LayerNorms) are swapped in and out around it.
"""

from __future__ import annotations

import torch
from torch import nn

from maskctl.masking.served import Routing, ServedLinear, unwrap_served, wrap_for_serving
from maskctl.masking.tuned import Swapped, add_deltas, parameter, put_back_values

CURRENT = "current"  # the one task name of the served layers: the bundle applied now


class ResidentModel:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._routing = Routing()  # never routed: the layers run as their merged base layer
        self._layers: list[ServedLinear] = []
        self._swapped: list[Swapped] = []  # (parameter, value before the bundle's head or delta)
        self.active: object | None = None
        self._wrapped: tuple[nn.Module, list[str]] | None = None  # (model, names) wrapped now

    @torch.no_grad()
    def apply(
        self,
        masks: dict[str, torch.Tensor],
        head: dict[str, torch.Tensor] | None = None,
        key: object | None = None,
        model: nn.Module | None = None,
        tuned: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Make ``masks`` (and ``head``, and the ``tuned`` deltas) current, first undoing whatever
        was applied before.

        Names resolve in ``model`` (default: the resident model), e.g. a task model of another
        kind that shares the resident encoder.
        """
        self.restore()
        model = model if model is not None else self.model
        for name, tensor in (head or {}).items():
            param = parameter(model, name)  # through a served layer's base_layer
            self._swapped.append((param, param.detach().clone()))
            param.copy_(tensor.to(param.device, param.dtype))
        self._swapped += add_deltas(model, tuned or {})
        layers = wrap_for_serving(model, list(masks), self._routing)
        self._wrapped = (model, list(masks))
        for name, mask in masks.items():
            layer = layers[name]
            if not isinstance(layer, ServedLinear):
                raise ValueError(f"{name} is {type(layer).__name__}: a mask applies to a linear layer")
            layer.add_task(CURRENT, layer.encode(mask.detach().to("cpu", torch.bool).numpy()))
            layer.merge(CURRENT)
            self._layers.append(layer)
        self.active = key

    @torch.no_grad()
    def restore(self) -> None:
        """Put back every value the current mask and head replaced (bit-exact) and the plain
        layers in the served layers' places."""
        for layer in self._layers:
            layer.remove_task(CURRENT)  # unmerged first
        if self._wrapped is not None:
            unwrap_served(*self._wrapped)
            self._wrapped = None
        put_back_values(self._swapped)
        self._layers.clear()
        self._swapped.clear()
        self.active = None

    def saved_bytes(self) -> int:
        """Memory held to undo the current mask: its flips in the served layers."""
        return sum(layer.nbytes(CURRENT) for layer in self._layers)
