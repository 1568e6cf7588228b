"""The initial-mask references a served task's corrections are taken against.

A task trained from a seeded initial mask R stores only where its final mask differs from R
(its flips), so its correction on a layer is ``W ⊙ M_t - W ⊙ R`` plus the shared reference
product ``x (W ⊙ R)^T``. Every task of one seed, threshold and initial sparsity shares one
dense ``W ⊙ R`` per layer: it is built when the first such task loads and freed when the last
one unloads (counted here). Tasks without an initial mask (format 1) take their correction
against the pristine weights (``key`` None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from maskctl.masking.flips import flips_of, kernel_handles, nonzero_mask
from maskctl.masking.mixed import Correction, MixedMaskLinear, correction_matrix
from maskctl.serving.tasks import Corrections


class References:
    """``W ⊙ R`` per reference key on the served ``MixedMaskLinear`` layers, with its users."""

    def __init__(self, layers: dict[str, MixedMaskLinear]) -> None:
        self._layers = layers  # by encoder-relative name; the model adds layers as bundles load
        self.users: dict[tuple, int] = {}

    def missing(self, coded, inner: dict[str, str]) -> tuple[tuple | None, dict[str, torch.Tensor]]:
        """The task's reference key, and its initial masks where no layer holds that reference
        yet (regenerated before the lock is taken: ~0.1-0.2 s for MiniLM, once per seed)."""
        initial = coded.initial
        if initial is None:
            return None, {}
        key = (initial.seed, initial.threshold, initial.init_sparsity)
        missing = {}
        shapes = {layer.name: layer.shape for layer in coded.info.layers}
        for name, layer_name in inner.items():
            layer = self._layers.get(layer_name)
            if layer is None or key not in layer.references:
                shape = shapes[name]
                missing[layer_name] = torch.from_numpy(initial.mask(initial.scores(name, math.prod(shape))).reshape(shape))
        return key, missing

    def lacks(self, key: tuple | None, layer_names: Iterable[str], masks: dict[str, torch.Tensor]) -> bool:
        """Whether a layer has neither the reference nor its mask in ``masks`` (an unload freed
        it between ``missing`` and the lock)."""
        return key is not None and any(key not in self._layers[n].references and n not in masks for n in layer_names)

    def add(self, key: tuple | None, masks: dict[str, torch.Tensor]) -> None:
        """``W ⊙ R`` on each layer that lacks it (pristine weights: the caller has unmerged), and
        one more user of ``key``."""
        if key is None:
            return
        for layer_name, start in masks.items():
            layer = self._layers[layer_name]
            if key not in layer.references:
                weight = layer.weight.detach()
                layer.references[key] = weight * start.to(weight.device, weight.dtype)
        self.users[key] = self.users.get(key, 0) + 1

    def release(self, key: tuple | None) -> None:
        """One user fewer; the last one's going frees the dense copies."""
        if key is None:
            return
        self.users[key] -= 1
        if not self.users[key]:
            del self.users[key]
            for layer in self._layers.values():
                layer.references.pop(key, None)

    def terms(self, key: tuple | None, masks: dict[str, torch.Tensor]) -> Corrections:
        """Each layer's term against the reference ``key`` (read from the pristine weights: the
        caller has unmerged them). The reference mask is recovered as ``W ⊙ R != 0``: where W is
        zero the term is zero either way."""
        out = {}
        for inner, mask in masks.items():
            layer = self._layers[inner]
            reference = None if key is None else nonzero_mask(layer.references[key])
            if kernel_handles(layer.weight):  # positions only: values come from the weights
                out[inner] = Correction(reference=key, flips=flips_of(mask, reference))
            else:
                out[inner] = Correction(correction_matrix(layer.weight, mask, reference), key)
        return out

    def nbytes(self) -> int:
        """Bytes of the dense copies held (a tensor shared between layers counted once)."""
        held = {id(w): w.numel() * w.element_size() for layer in self._layers.values() for w in layer.references.values()}
        return sum(held.values())
