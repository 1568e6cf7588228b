"""maskctl: adapt one frozen pretrained transformer to many tasks by learning binary masks.

The method is Zhao et al. 2020, "Masking as an Efficient Alternative to Finetuning for
Pretrained Language Models" (arXiv 2004.12406): each selected linear weight W gets a score
matrix S, the forward pass uses W * 1[S > tau], and the straight-through estimator trains S.
Each task then costs one bit per masked weight, stored in a self-describing ``*.bundle``.

The public names are imported lazily so that ``import maskctl`` stays cheap (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from maskctl.version import __version__

_LAZY = {
    "MaskedModel": "maskctl.serving",
    "MaskedLinear": "maskctl.masking.layer",
    "MaskConfig": "maskctl.masking.config",
    "wrap_model": "maskctl.masking.model",
    "apply_masks": "maskctl.masking.model",
    "ResidentModel": "maskctl.masking.resident",
    "run_ensemble": "maskctl.experiments.ensemble",
    "export_bundle": "maskctl.experiments.export",
    "Bundle": "maskctl.bundle.format",
    "load_bundle": "maskctl.bundle.format",
    "save_bundle": "maskctl.bundle.format",
    "TrainArgs": "maskctl.train_settings",
    "train": "maskctl.training.trainer",
    "evaluate_bundle": "maskctl.experiments.evaluate",
    "get_task": "maskctl.tasks.task",
    "MaskctlError": "maskctl.errors",
}

__all__ = [
    "Bundle",
    "MaskConfig",
    "MaskctlError",
    "MaskedLinear",
    "MaskedModel",
    "ResidentModel",
    "TrainArgs",
    "__version__",
    "apply_masks",
    "evaluate_bundle",
    "export_bundle",
    "get_task",
    "load_bundle",
    "run_ensemble",
    "save_bundle",
    "train",
    "wrap_model",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maskctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
