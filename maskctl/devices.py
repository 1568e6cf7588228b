"""Which torch device a command runs on (``--device auto|cpu|cuda``): one rule for training,
evaluation, serving and the analyses."""

from __future__ import annotations

import torch

from maskctl.errors import MaskctlError


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MaskctlError(
            "--device cuda was asked for but no CUDA device is available", "use --device cpu or --device auto"
        )
    if device not in ("cpu", "cuda"):
        raise MaskctlError(f"unknown device {device!r}", "use auto, cpu or cuda")
    return torch.device(device)
