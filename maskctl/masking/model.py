"""Wrap a transformers model for mask training, read its masks, and merge or apply masks.

``wrap_model`` swaps each target ``nn.Linear`` for a ``MaskedLinear`` (one ``setattr`` each)
and freezes everything else; ``merge_masks`` swaps them back with the mask multiplied into the
weights, leaving a plain transformers model; ``apply_masks`` does the same for masks read from
a bundle onto a freshly loaded base model. Merged and wrapped forwards compute the same
``W * mask`` product, so their logits agree bit for bit.
"""

from __future__ import annotations

import hashlib
from typing import cast

import torch
from torch import nn

from maskctl.masking.config import MaskConfig
from maskctl.masking.layer import MaskedLinear, replace_submodule
from maskctl.masking.targets import find_targets, num_blocks, parse_blocks


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed derived from the run seed and the module name (platform independent)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def wrap_model(model: nn.Module, config: MaskConfig) -> list[str]:
    """Freeze ``model`` and replace its target linears with ``MaskedLinear``; return their names.

    With ``head="train"`` the output layer is left unmasked and trainable instead.
    """
    targets = find_targets(model, parse_blocks(config.blocks, num_blocks(model)))
    for param in model.parameters():
        param.requires_grad_(False)
    names = list(targets.blocks)
    if targets.pooler:
        names.append(targets.pooler)
    if targets.output:
        if config.head == "mask":
            names.append(targets.output)
        else:
            for param in model.get_submodule(targets.output).parameters():
                param.requires_grad_(True)
    for name in names:
        base = cast(nn.Linear, model.get_submodule(name))  # MaskedLinear refuses anything else
        replace_submodule(
            model,
            name,
            MaskedLinear(
                base,
                threshold=config.threshold,
                init_sparsity=config.init_sparsity,
                seed=layer_seed(config.seed, name),
            ),
        )
    return names


def masked_layers(model: nn.Module) -> dict[str, MaskedLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, MaskedLinear)}


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The binary masks of every ``MaskedLinear`` in ``model`` (bool, on CPU)."""
    return {name: layer.binary_mask().cpu() for name, layer in masked_layers(model).items()}


def merge_masks(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Replace every ``MaskedLinear`` by its base linear with the mask multiplied in: the layer's
    current mask, or ``masks[name]`` when given (the state a run kept, e.g. its best epoch)."""
    for name, layer in masked_layers(model).items():
        replace_submodule(model, name, layer.merged_linear() if masks is None else layer.base_layer)
    return model if masks is None else apply_masks(model, masks)


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Multiply bundle masks into the plain linears of a freshly loaded model, in place."""
    for name, mask in masks.items():
        layer = model.get_submodule(name)
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"{name} is {type(layer).__name__}, expected nn.Linear")
        weight = layer.weight
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"{name}: mask shape {tuple(mask.shape)} != weight {tuple(weight.shape)}")
        with torch.no_grad():
            weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))
    return model


def sparsity(mask: torch.Tensor) -> float:
    """Fraction of zeros in a binary mask."""
    return 1.0 - float(mask.float().mean())
