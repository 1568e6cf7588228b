"""The one loader from a bundle to a model: ``eval`` (``experiments.evaluate``), ``ensemble``,
``export``, the analyses and serving all rebuild their models here.

``load_base`` loads the base model a bundle names (or ``--model``) with its task head and checks
that it is the model the bundle was trained on (layers, shapes, the fingerprint of the masked
weights and of any tuned parameters); ``check_head`` checks a bundle's head tensors against a
loaded model; ``load_masked`` adds the head, multiplies the masks in and adds the tuned deltas:
the very model ``maskctl train`` scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from maskctl.bundle.fingerprint import fingerprint, tensors_fingerprint
from maskctl.bundle.format import Bundle
from maskctl.bundle.meta import BundleMeta
from maskctl.errors import BundleError
from maskctl.masking.model import apply_masks
from maskctl.masking.tuned import add_deltas, parameter
from maskctl.models import ModelSource, load_task_model, load_tokenizer, model_option, resolve_model, stored_source
from maskctl.tasks.card import TaskCard
from maskctl.tasks.task import Task


@dataclass
class LoadedBundle:
    """A base model with one bundle's head loaded and its masks merged in, ready to score."""

    model: torch.nn.Module
    tokenizer: Any
    task: Task
    source: ModelSource
    bundle: Bundle


def load_base(
    meta: BundleMeta,
    model: str | None = None,
    device: torch.device | None = None,
    auto_class: str | None = None,
    where: str | Path | None = None,
) -> tuple[torch.nn.Module, ModelSource, Task]:
    """Load the base model a bundle names (or ``model``) with its task head (or the head of
    ``auto_class``), and check that it is the model the bundle was trained on: layers, shapes
    and the fingerprint of the weights. ``meta`` is ``Bundle.info``."""
    where = where or "the bundle"
    base = meta.base_model
    source = resolve_model(model) if model else stored_source(base.source)  # package, hub id or local folder
    task = Task.from_card(TaskCard.from_dict(meta.task.card))
    net, _ = load_task_model(source, auto_class or task.kind.auto_class, task.labels)
    # Under another head only the encoder's layers are the base's to check (serving's heads are per task).
    own = auto_class is None or auto_class == task.kind.auto_class
    check_fit(
        net,
        meta,
        where,
        source.spec,
        f"pass the model it was trained on: {model_option(base.source)}",
        encoder_only=not own,
    )
    return net.to(device or torch.device("cpu")).eval(), source, task


def check_fit(
    net: torch.nn.Module,
    meta: BundleMeta,
    where: str | Path,
    spec: str,
    fix: str,
    encoder_only: bool = False,
    fingerprints: dict[tuple[str, ...], str] | None = None,
) -> None:
    """The one check that a bundle fits a loaded model, before anything touches the model: every
    masked layer exists there as an ``nn.Linear`` of the stored shape (only the encoder's layers
    when ``encoder_only``: the heads are per task), the bundle's layers belong to the model's
    architecture at all, and the fingerprint of the masked weights matches. A bundle of another
    architecture (e.g. DistilBERT layers against a BERT) is a ``BundleError`` like any misfit,
    never an ``AttributeError``. ``fingerprints`` caches hashes by layer set (serving)."""
    prefix = net.base_model_prefix + "."
    layers = [lay for lay in meta.layers if not encoder_only or lay.name.startswith(prefix)]
    if meta.layers and not layers:
        raise BundleError(
            f"{where}: its masked layers ({meta.layers[0].name}, ...) are not layers of model "
            f"{spec!r} ({type(net).__name__})",
            fix,
        )
    for layer in layers:
        try:
            module = net.get_submodule(layer.name)
        except AttributeError:
            module = None
        module = getattr(module, "base_layer", module)  # a layer serving has wrapped (masking.served)
        if not isinstance(module, torch.nn.Linear) or tuple(module.weight.shape) != layer.shape:
            raise BundleError(f"{where}: masked layer {layer.name} does not fit model {spec!r}", fix)
    base = meta.base_model
    key = fingerprint_keys(meta)[0]
    found = (fingerprints or {}).get(key)
    if found is None:
        try:
            found = fingerprint(net, key)
        except AttributeError:  # a fingerprinted layer the model lacks
            found = "sha256:missing layers"
        if fingerprints is not None:
            fingerprints[key] = found
    if found != base.fingerprint:
        raise BundleError(
            f"{where} was trained on a different base model than {spec!r} "
            f"(fingerprint {found[7:19]} != {base.fingerprint[7:19]})",
            fix,
        )
    if meta.tuned:
        check_tuned(net, meta, where, spec, fix, fingerprints)


def fingerprint_keys(meta: BundleMeta) -> list[tuple[str, ...]]:
    """What ``check_fit`` hashes for a bundle (and caches the hash under): its fingerprinted base
    layers, and its tuned tensors when it has any."""
    keys = [tuple(sorted(meta.base_model.fingerprint_layers))]
    if meta.tuned:
        keys.append(("tuned", *sorted(meta.tuned.tensors)))
    return keys


def check_tuned(
    net: torch.nn.Module,
    meta: BundleMeta,
    where: str | Path,
    spec: str,
    fix: str,
    fingerprints: dict[tuple[str, ...], str] | None = None,
) -> None:
    """The base parameters a bundle tuned (``--also-train``) exist in ``net`` and hold the
    pristine values the deltas were taken against (their own fingerprint)."""
    names = tuple(sorted(meta.tuned.tensors))
    key = fingerprint_keys(meta)[1]
    found = (fingerprints or {}).get(key)
    if found is None:
        try:
            found = tensors_fingerprint((name, parameter(net, name)) for name in names)
        except AttributeError:
            raise BundleError(
                f"{where}: its tuned tensors ({names[0]}, ...) are not parameters of model {spec!r}", fix
            ) from None
        if fingerprints is not None:
            fingerprints[key] = found
    if found != meta.tuned.fingerprint:
        raise BundleError(
            f"{where} tuned biases/LayerNorms of a different base model than {spec!r} "
            f"(fingerprint {found[7:19]} != {meta.tuned.fingerprint[7:19]})",
            fix,
        )


def check_head(net: torch.nn.Module, bundle: Bundle) -> None:
    """The bundle's head tensors exist in ``net`` with their stored shapes."""
    # plain names, whatever layers a ResidentModel has wrapped (``base_layer.`` left out)
    fit_head(
        {k.replace(".base_layer.", "."): tuple(v.shape) for k, v in net.state_dict().items()},
        bundle.head,
        bundle.path,
        f"pass the model it was trained on: {model_option(bundle.info.base_model.source)}",
    )


def fit_head(
    shapes: dict[str, tuple[int, ...]],
    head: dict[str, torch.Tensor],
    where: str | Path | None,
    fix: str,
    complete: bool = False,
) -> None:
    """The one head check: every head tensor is a tensor of the model with its shape, and with
    ``complete`` every tensor of the model is in the head (a served task's head network)."""
    wrong = [k for k, t in head.items() if k not in shapes or shapes[k] != tuple(t.shape)]
    missing = sorted(set(shapes) - set(head)) if complete else []
    if wrong or missing:
        raise BundleError(f"{where}: head tensor {(wrong or missing)[0]} does not fit this model", fix)


def load_masked(bundle: Bundle, model: str | None = None, device: torch.device | None = None) -> LoadedBundle:
    """Load the bundle's base model (or ``model``), check its fingerprint, merge the masks."""
    net, source, task = load_base(bundle.info, model, device, where=bundle.path)
    check_head(net, bundle)
    net.load_state_dict(bundle.head, strict=False)
    apply_masks(net, bundle.masks)
    add_deltas(net, bundle.tuned)  # --also-train: the pristine values (checked above) plus the deltas
    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    return LoadedBundle(model=net, tokenizer=tokenizer, task=task, source=source, bundle=bundle)
