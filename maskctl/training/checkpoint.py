"""Training checkpoints: everything needed to continue a run bit-identically.

A checkpoint is a folder written atomically: ``state.safetensors`` holds the trainable
parameters (mask scores, or all weights when finetuning), the optimizer's tensors and the RNG
states (torch's global generator for dropout, the data loader's generator as it was at the
start of the current epoch, CUDA's when present); ``state.json`` holds the run's arguments, the
position in the data (epoch, step, batches done in the epoch), the dev history, the loss
curve so far, the optimizer's and scheduler's scalar state, and which evaluation is the best
so far (whose state is stored beside the parameters). No pickle: safetensors and JSON only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from maskctl.errors import MaskctlError
from maskctl.io import atomic_dir

FORMAT = "maskctl.checkpoint"


@dataclass
class Position:
    epoch: int  # 0-based epoch in progress
    step: int  # optimizer steps done in total
    in_epoch: int  # batches done in the current epoch


def save_checkpoint(
    folder: Path,
    args: dict[str, Any],
    position: Position,
    history: list[dict[str, Any]],
    params: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler,
    epoch_generator_state: torch.Tensor,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    selection: dict[str, Any] | None = None,
    curve: dict[str, Any] | None = None,
) -> Path:
    """``extra_tensors`` (e.g. the best state so far) are stored under their own names;
    ``selection`` is the ``BestKeeper``'s scalar state, ``curve`` the loss curve's
    (``tracking.LossCurve.state``: the output stores the curve, so a resumed run needs it)."""
    tensors = {f"param/{name}": p.detach().cpu().contiguous() for name, p in params.items()}
    tensors.update({name: t.detach().cpu().contiguous() for name, t in (extra_tensors or {}).items()})
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    tensors["rng/data"] = epoch_generator_state.clone()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    meta = {
        "format": FORMAT,
        "args": args,
        "position": position.__dict__,
        "history": history,
        "param_groups": opt["param_groups"],
        "optim_keys": {str(i): list(s) for i, s in opt["state"].items()},
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "selection": selection,
        "curve": curve,
    }
    with atomic_dir(folder) as tmp:
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


@dataclass
class Checkpoint:
    args: dict[str, Any]
    position: Position
    history: list[dict[str, Any]]
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def restore(self, params: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer, scheduler) -> torch.Tensor:
        """Load parameters, optimizer, scheduler and RNG; return the data generator's epoch-start state."""
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(self.tensors[f"param/{name}"].to(p.device, p.dtype))
        state = {
            int(i): {k: self.tensors[f"optim/{i}/{k}"] for k in keys} for i, keys in self.meta["optim_keys"].items()
        }
        optimizer.load_state_dict({"state": state, "param_groups": self.meta["param_groups"]})
        if scheduler is not None and self.meta["scheduler"] is not None:
            scheduler.load_state_dict(self.meta["scheduler"])
        torch.set_rng_state(self.tensors["rng/torch"])
        cuda = [self.tensors[k] for k in sorted(self.tensors) if k.startswith("rng/cuda/")]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda)
        return self.tensors["rng/data"]


def load_checkpoint(folder: str | Path) -> Checkpoint:
    folder = Path(folder)
    state, meta_path = folder / "state.safetensors", folder / "state.json"
    if not state.is_file() or not meta_path.is_file():
        raise MaskctlError(
            f"{folder} is not a maskctl checkpoint (no state.json / state.safetensors)",
            "pass the folder that --checkpoint-every wrote (default: <output>.ckpt)",
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(state))
    except Exception as exc:
        raise MaskctlError(
            f"{folder}: the checkpoint cannot be read ({type(exc).__name__})",
            "it is damaged; resume from another checkpoint or train again",
        ) from exc
    if meta.get("format") != FORMAT:
        raise MaskctlError(f"{folder} is not a maskctl checkpoint", "pass the folder --checkpoint-every wrote")
    return Checkpoint(
        args=meta["args"], position=Position(**meta["position"]), history=meta["history"], tensors=tensors, meta=meta
    )


def refuse_unresumed(folder: Path, overwrite: bool) -> bool:
    """Refuse to start a run over when the checkpoint of an interrupted run with the same output
    is beside it, naming the command that resumes it; True when ``overwrite`` starts it over
    anyway (the finished run then removes the old checkpoint).

    Why not resume on our own: Trainer-style tools resume only when asked (the Hugging Face
    ``Trainer`` needs ``resume_from_checkpoint``, Lightning a ``ckpt_path``), because a rerun
    often changes a setting, and a resumed run keeps the checkpoint's settings. Why not start
    over silently: the new run would replace the checkpoint at its first save and delete it when
    it ends, so an hour of training would go without a word."""
    state = folder / "state.json"
    if not state.is_file():
        return False
    if overwrite:
        return True
    try:
        position = json.loads(state.read_text(encoding="utf-8"))["position"]
        where = f" at step {position['step']}"
    except (OSError, ValueError, KeyError, TypeError):
        where = ""
    raise MaskctlError(
        f"{folder} holds the checkpoint of an interrupted run{where}",
        f"continue it with: maskctl train --resume {folder} (or pass --overwrite to start over)",
    )
