"""Evaluate a model on a task split, and rebuild a masked model from a bundle.

``maskctl train`` scores its final dev metric through ``evaluate_model`` on the merged model,
and ``maskctl eval`` rebuilds that same merged model from the bundle and calls the same
function with the same batch size, so the two numbers agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from maskctl.bundle.codec import fingerprint
from maskctl.bundle.format import Bundle, load_bundle
from maskctl.errors import BundleError, MaskctlError
from maskctl.masking.model import apply_masks
from maskctl.models import ModelSource, load_task_model, load_tokenizer, resolve_model
from maskctl.tasks.card import TaskCard
from maskctl.tasks.kinds import Features
from maskctl.tasks.task import Task


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MaskctlError("--device cuda was asked for but no CUDA device is available",
                           "use --device cpu or --device auto")
    if device not in ("cpu", "cuda"):
        raise MaskctlError(f"unknown device {device!r}", "use auto, cpu or cuda")
    return torch.device(device)


def make_loader(features: list[dict[str, Any]], collate, batch_size: int,
                shuffle: bool = False, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(features, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=generator)


@torch.inference_mode()
def collect_scores(model: torch.nn.Module, loader: DataLoader, task: Task,
                   device: torch.device) -> tuple[list[torch.Tensor], list]:
    """Per-example score tensors (logits) and golds over ``loader``, model in eval mode.

    The model's train/eval mode is put back afterwards: a caller that evaluates between training
    steps must not silently continue without dropout (it also makes a training step faster).
    """
    was_training = model.training
    model.eval()
    scores: list[torch.Tensor] = []
    golds: list = []
    try:
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            s, g = task.kind.select(logits, batch)
            scores += s
            golds += g
    finally:
        model.train(was_training)
    return scores, golds


def argmax(scores: list[torch.Tensor]) -> list:
    """Predictions from score tensors: a label id each, or a list of them for tagging."""
    return [s.argmax(dim=-1).tolist() for s in scores]


def evaluate_model(model: torch.nn.Module, task: Task, features: Features, tokenizer,
                   batch_size: int, device: torch.device) -> dict[str, float]:
    """The task metric on ``features``, plus the encoding's facts (e.g. excluded words)."""
    loader = make_loader(features, task.kind.collate(tokenizer), batch_size)
    scores, golds = collect_scores(model, loader, task, device)
    return {**task.metric(golds, argmax(scores)), **features.stats}


@dataclass
class MaskedModel:
    """A base model with one bundle's mask merged in, ready to predict."""

    model: torch.nn.Module
    tokenizer: Any
    task: Task
    source: ModelSource
    bundle: Bundle


def load_base(meta: dict[str, Any], model: str | None = None,
              device: torch.device | None = None) -> tuple[torch.nn.Module, ModelSource, Task]:
    """Load the base model a bundle names (or ``model``) with its task head, and check that it
    is the model the bundle was trained on: layers, shapes and the fingerprint of the weights."""
    base = meta["base_model"]
    source = resolve_model(model or base["source"]["spec"])
    if source.kind == "hub" and model is None:
        source = ModelSource(**{**source.to_dict(), "version": base["source"].get("version")})
    task = Task.from_card(TaskCard.from_dict(meta["task"]))
    net, _ = load_task_model(source, task.kind.auto_class, task.labels)
    where = meta.get("path", "the bundle")
    trained_on = base["source"]["spec"]
    for layer in meta["layers"]:
        try:
            module = net.get_submodule(layer["name"])
        except AttributeError:
            module = None
        if not isinstance(module, torch.nn.Linear) or list(module.weight.shape) != list(layer["shape"]):
            raise BundleError(f"{where}: masked layer {layer['name']} does not fit model {source.spec!r}",
                              f"pass the model it was trained on: --model {trained_on}")
    found = fingerprint(net, base["fingerprint_layers"])
    if found != base["fingerprint"]:
        raise BundleError(
            f"{where} was trained on a different base model than {source.spec!r} "
            f"(fingerprint {found[7:19]} != {base['fingerprint'][7:19]})",
            f"pass the model it was trained on: --model {trained_on}",
        )
    return net.to(device or torch.device("cpu")).eval(), source, task


def check_head(net: torch.nn.Module, bundle: Bundle) -> None:
    state = net.state_dict()
    for name, tensor in bundle.head.items():
        if name not in state or tuple(state[name].shape) != tuple(tensor.shape):
            raise BundleError(f"{bundle.path}: head tensor {name} does not fit this model",
                              f"pass the model it was trained on: --model {bundle.meta['base_model']['source']['spec']}")


def model_from_bundle(bundle: Bundle, model: str | None = None,
                      device: torch.device | None = None) -> MaskedModel:
    """Load the bundle's base model (or ``model``), check its fingerprint, merge the masks."""
    net, source, task = load_base({**bundle.meta, "path": str(bundle.path)}, model, device)
    check_head(net, bundle)
    net.load_state_dict(bundle.head, strict=False)
    apply_masks(net, bundle.masks)
    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    return MaskedModel(model=net, tokenizer=tokenizer, task=task, source=source, bundle=bundle)


@dataclass
class EvalResult:
    bundle: Path
    task: str
    split: str
    metrics: dict[str, float]
    trained_dev: dict[str, float] | None


def evaluate_bundle(path: str | Path, split: str = "dev", model: str | None = None,
                    data_dir: str | Path | None = None, device: str = "auto",
                    batch_size: int | None = None) -> EvalResult:
    """``maskctl eval``: score a bundle on a split of its task."""
    bundle = load_bundle(path)
    dev = resolve_device(device)
    masked = model_from_bundle(bundle, model=model, device=dev)
    args = bundle.meta.get("training", {})
    features = masked.task.features(split, masked.tokenizer, int(args.get("max_length", 128)),
                                    data_dir=data_dir or args.get("data_dir"),
                                    options={"word_piece": args.get("word_piece", "last")})
    metrics = evaluate_model(masked.model, masked.task, features, masked.tokenizer,
                             batch_size or int(args.get("eval_batch_size", 64)), dev)
    return EvalResult(bundle=Path(path), task=masked.task.name, split=split, metrics=metrics,
                      trained_dev=bundle.meta.get("metrics", {}).get("dev"))
