"""Tensors trained beside the mask (``--also-train``): the masked blocks' biases and LayerNorms.

Why: a binary mask can only remove weights; it cannot shift an activation. BitFit (Ben Zaken
et al. 2022) showed that the biases alone carry much of finetuning's gain, and they are tiny:
MiniLM's four masked blocks hold ~20k bias and LayerNorm values against 7.1 M masked weights.
So a task may also train, inside the blocks it masks, the biases of the masked linears and/or
the LayerNorm weights and biases. The bundle stores each as its **difference from the
pretrained value in float16** (``tuned/<name>``): a delta is small, so half precision loses
~1e-4 of it, and a reader adds it to the base it already holds (the fingerprint of those
pristine values is stored and checked like the masked weights'). The pooler and classifier are
never tuned here (a trained head is ``--head train``).

Serving adds a task's deltas on its own rows: the masked linears add their bias delta to the
group's rows (``mixed.MixedMaskLinear``), the LayerNorms recompute their rows with the task's
weight and bias (``MixedLayerNorm``), so a mixed batch equals each task's merged model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from maskctl.masking.config import ALSO_TRAIN
from maskctl.masking.targets import block_paths, find_targets

DELTA_DTYPE = torch.float16
Swapped = tuple[torch.Tensor, torch.Tensor]  # (parameter, the value it held)


def tuned_names(model: nn.Module, block_ids: list[int], which: str | None) -> list[str]:
    """The parameters ``--also-train which`` trains, named as in the plain model: the biases of
    the masked linears of the blocks ``block_ids`` and/or the LayerNorm weights and biases inside
    those blocks; in the model's order."""
    if not which or which == "none":
        return []
    if which not in ALSO_TRAIN:
        raise ValueError(f"also_train {which!r} is not one of {ALSO_TRAIN}")
    wanted: set[str] = set()
    if "bias" in which:
        linears = find_targets(model, block_ids).blocks
        wanted |= {f"{name}.bias" for name in linears if _module(model, name).bias is not None}
    if "layernorm" in which:
        for path in block_paths(model, block_ids):
            for name, module in model.get_submodule(path).named_modules():
                if isinstance(module, nn.LayerNorm) and module.elementwise_affine:
                    wanted |= {f"{path}.{name}.{p}" for p, _ in module.named_parameters(recurse=False)}
    return [name for name in plain_names(model) if name in wanted]


def plain_names(model: nn.Module) -> list[str]:
    """Parameter names as the plain model has them, whatever layers are wrapped (a wrapper's
    ``base_layer.`` step left out)."""
    return [name.replace(".base_layer.", ".") for name, _ in model.named_parameters()]


def parameter(model: nn.Module, name: str) -> torch.Tensor:
    """The parameter ``name`` (plain naming) of ``model``, through a masking wrapper's
    ``base_layer`` (``MaskedLinear`` in training, ``MixedMaskLinear`` in serving)."""
    module_name, _, attr = name.rpartition(".")
    return getattr(_module(model, module_name), attr)


def _module(model: nn.Module, name: str) -> nn.Module:
    module = model.get_submodule(name)
    return getattr(module, "base_layer", module)


def pristine_values(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """Copies of the named parameters before training (what deltas are taken against)."""
    return {name: parameter(model, name).detach().float().cpu().clone() for name in names}


def deltas_of(model: nn.Module, pristine: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stored form: each trained parameter minus its pristine value, in float16."""
    return {
        name: (parameter(model, name).detach().float().cpu() - value).to(DELTA_DTYPE)
        for name, value in pristine.items()
    }


def tuned_value(base: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """What every reader computes: the pristine value plus the stored delta, in the base's
    dtype (the trainer scores its kept state with this very value)."""
    return base + delta.to(base.device, base.dtype)


@torch.no_grad()
def add_deltas(model: nn.Module, deltas: Mapping[str, torch.Tensor]) -> list[Swapped]:
    """Set each parameter to ``tuned_value`` in place; returns what ``put_back_values`` restores."""
    swapped = []
    for name, delta in deltas.items():
        param = parameter(model, name)
        swapped.append((param, param.detach().clone()))
        param.copy_(tuned_value(param, delta))
    return swapped


@torch.no_grad()
def put_back_values(swapped: list[Swapped]) -> None:
    """The parameters as they were before ``add_deltas`` (copies: bit for bit)."""
    for param, value in swapped:
        param.copy_(value)
