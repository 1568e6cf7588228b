"""Ensembles of masks on one resident base model (the paper's Table 2 protocol).

All members must share the base model (fingerprint), the task's kind and label set, and the
encoding (max length, word piece). The base is loaded once; each member's mask is applied in
place, its scores collected, and the weights restored (``ResidentModel``), so memory holds one
model plus one mask at a time, never a model per member.

Votes, over per-example score tensors (classes, endings, or words x tags for tagging, which
therefore votes per word):

* ``label``: majority of the members' predicted labels. Ties go to the tied label with the
  larger summed probability, then to the lower label index (``argmax`` keeps the first).
* ``logit``: argmax of the summed logits.
* ``prob``: argmax of the summed softmax probabilities.
* ``best``: the rule with the best dev score (ties in the order label, logit, prob), reported
  on the requested split: pick on dev, report on test, as the paper does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maskctl.bundle.format import load_bundle, read_meta
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.bundle.meta import BundleMeta
from maskctl.choices import VOTE_RULES as RULES
from maskctl.devices import resolve_device
from maskctl.errors import BundleError, MaskctlError
from maskctl.evaluation import argmax, collect_scores, make_loader, task_metrics
from maskctl.io import atomic_path
from maskctl.masking.resident import ResidentModel
from maskctl.models import load_tokenizer
from maskctl.serving.loading import check_head, check_tuned, load_base


def combine(members: list[list[torch.Tensor]], by: str) -> list[torch.Tensor]:
    """Combined score tensors per example from each member's per-example logits."""
    if by not in RULES:
        raise MaskctlError(f"unknown vote {by!r}", f"use one of {', '.join(RULES)} or best")
    combined = []
    for scores in zip(*members):
        stacked = torch.stack(scores)  # members x ... x classes
        if by == "logit":
            combined.append(stacked.sum(0))
            continue
        probs = stacked.softmax(dim=-1).sum(0)
        if by == "prob":
            combined.append(probs)
            continue
        votes = torch.nn.functional.one_hot(stacked.argmax(-1), stacked.shape[-1]).sum(0).to(probs.dtype)
        combined.append(votes + probs / (len(scores) + 1))  # summed probs < 1 vote: only break ties
    return combined


def check_compatible(metas: list[BundleMeta], paths: list[Path]) -> None:
    """One line naming the first bundle that does not match the first one, and what differs.

    Checked in the order a user thinks of bundles: the kind and labels of the task, the base
    model, the masked layers, then the base weights' fingerprint (it hashes the masked layers'
    weights, so it differs whenever the layers do: naming it first said "another base model" of
    two bundles of two tasks on the same model), then the encoding. Bundles of two task names
    that differ in any of these are named by their tasks, the difference a user sees first."""
    first = metas[0]
    keys = {
        "task kind": lambda m: m.task.kind,
        "label set": lambda m: m.labels,
        "base model": lambda m: m.base_model.source.get("spec"),
        "masked layers": lambda m: sorted(layer.name for layer in m.layers),
        "base model weights (fingerprint)": lambda m: m.base_model.fingerprint[:19],
        "max length": lambda m: m.training.max_length,
        "word piece": lambda m: m.training.word_piece,
    }
    fix = "ensemble bundles of one task, trained on the same base model and layers"
    for meta, path in zip(metas[1:], paths[1:]):
        differs = next((what for what, get in keys.items() if get(meta) != get(first)), None)
        if differs is None:
            continue
        if meta.task.name != first.task.name:
            raise BundleError(
                f"{path} is a bundle of task {meta.task.name!r}, {paths[0]} of task {first.task.name!r}", fix
            )
        if differs == "masked layers":
            mine, theirs = set(keys[differs](meta)), set(keys[differs](first))
            odd = sorted(mine ^ theirs)
            raise BundleError(
                f"{path} masks {len(mine)} layers, {paths[0]} {len(theirs)} ({odd[0]} is "
                f"masked in {path if odd[0] in mine else paths[0]} only)",
                fix,
            )
        raise BundleError(
            f"{path} has another {differs} than {paths[0]} "
            f"({_shown(keys[differs](meta))} vs {_shown(keys[differs](first))})",
            fix,
        )


def _shown(value) -> str:
    """A value for a one-line message: a long list cut after five items."""
    if isinstance(value, list) and len(value) > 5:
        return repr(value[:5])[:-1] + ", ...]"
    return repr(value)


@dataclass
class EnsembleResult:
    task: str
    split: str
    members: list[tuple[Path, dict[str, float]]]
    rules: dict[str, dict[str, float]]  # rule -> metrics on the split
    chosen: str
    dev_scores: dict[str, float] = field(default_factory=dict)  # rule -> dev score, with --by best


def run_ensemble(
    paths: list[str | Path],
    by: str = "best",
    split: str = "dev",
    model: str | None = None,
    data_dir: str | Path | None = None,
    device: str = "auto",
    predictions: str | Path | None = None,
    on_member: Callable[[Path], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EnsembleResult:
    """``maskctl ensemble``: score each member and their votes on ``split``. ``on_member(path)``
    hears each member scored, ``on_batch(1)`` each batch scored (progress)."""
    if by not in (*RULES, "best"):
        raise MaskctlError(f"unknown --by {by!r}", "use label, logit, prob or best")
    paths = [resolve_bundle_ref(p) for p in paths]  # hf:// references: files in the Hugging Face cache
    if len(paths) < 2:
        raise MaskctlError("an ensemble needs at least two bundles", "pass several *.bundle files")
    metas = [BundleMeta.from_dict(read_meta(p), p) for p in paths]
    check_compatible(metas, paths)
    dev = resolve_device(device)
    net, source, task = load_base(metas[0], model, dev, where=paths[0])
    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    record = metas[0].training
    splits = [split] if by != "best" or split == "dev" else [split, "dev"]
    loaders = {}
    stats = {}
    for name in splits:
        features = record.features(task, name, tokenizer, data_dir)
        stats[name] = features.stats
        loaders[name] = make_loader(features, task.kind.collate(tokenizer), record.eval_batch_size)
    resident = ResidentModel(net)
    scores: dict[str, list[list[torch.Tensor]]] = {name: [] for name in splits}
    golds: dict[str, list] = {}
    members = []
    for path in paths:
        bundle = load_bundle(path)
        check_head(net, bundle)
        if bundle.info.tuned:  # each member's own tuned parameters, against the pristine base
            resident.restore()
            check_tuned(net, bundle.info, path, source.spec, "ensemble bundles of one base model")
        resident.apply(bundle.masks, bundle.head, key=path, tuned=bundle.tuned)
        del bundle  # one mask in memory at a time
        for name in splits:
            member_scores, golds[name] = collect_scores(net, loaders[name], task, dev, on_batch)
            scores[name].append(member_scores)
        if on_member is not None:
            on_member(path)
        members.append((path, {**task_metrics(task, golds[split], argmax(scores[split][-1])), **stats[split]}))
    resident.restore()

    rules = {
        rule: {**task_metrics(task, golds[split], argmax(combine(scores[split], rule))), **stats[split]}
        for rule in RULES
    }
    dev_scores = {}
    chosen = by
    if by == "best":
        dev_scores = {
            rule: (
                rules[rule]["score"]
                if split == "dev"
                else task_metrics(task, golds["dev"], argmax(combine(scores["dev"], rule)))["score"]
            )
            for rule in RULES
        }
        chosen = max(RULES, key=lambda rule: (dev_scores[rule], -RULES.index(rule)))
    if predictions:
        _write_predictions(Path(predictions), task, golds[split], scores[split], combine(scores[split], chosen))
    return EnsembleResult(
        task=task.name, split=split, members=members, rules=rules, chosen=chosen, dev_scores=dev_scores
    )


def _write_predictions(
    path: Path, task, golds: list, members: list[list[torch.Tensor]], combined: list[torch.Tensor]
) -> None:
    labels = task.labels

    def name(ids):
        return [labels[i] for i in ids] if isinstance(ids, list) else labels[ids]

    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for i, gold in enumerate(golds):
            row = {
                "index": i,
                "gold": name(gold),
                "prediction": name(combined[i].argmax(-1).tolist()),
                "members": [name(m[i].argmax(-1).tolist()) for m in members],
            }
            handle.write(json.dumps(row) + "\n")
