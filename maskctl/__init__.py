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

__version__ = "0.1.0"

_LAZY = {
    "MaskedModel": "maskctl.serving",
    "MaskedLinear": "maskctl.masking.layer",
    "MaskConfig": "maskctl.masking.model",
    "wrap_model": "maskctl.masking.model",
    "apply_masks": "maskctl.masking.model",
    "ResidentModel": "maskctl.masking.resident",
    "run_ensemble": "maskctl.serving.ensemble",
    "export_bundle": "maskctl.serving.export",
    "Bundle": "maskctl.bundle.format",
    "load_bundle": "maskctl.bundle.format",
    "save_bundle": "maskctl.bundle.format",
    "TrainArgs": "maskctl.training.trainer",
    "train": "maskctl.training.trainer",
    "evaluate_bundle": "maskctl.experiments.evaluate",
    "get_task": "maskctl.tasks.task",
    "MaskctlError": "maskctl.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maskctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
