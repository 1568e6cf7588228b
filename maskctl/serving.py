"""``MaskedModel``: one resident base model answering many tasks, one bundle per task.

The base is loaded once (its fingerprint checked against every bundle). Each task kind gets a
thin task model (classification, tagging or choice head) whose encoder *is* that one resident
encoder object, so heads are the only per-kind memory. Switching task applies that bundle's
mask in place and restores the previous one bit-exactly (``ResidentModel``); nothing is copied.

    mm = MaskedModel.from_bundles(["masks/news.bundle", "masks/ner.bundle"])
    mm.tasks                                   # ['bbc-news', 'wnut16']
    mm.predict("bbc-news", ["Shares fell in London ..."])
    mm.predict("wnut16", ["I saw Taylor Swift at MSG"])
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from maskctl.bundle.codec import fingerprint
from maskctl.bundle.format import Bundle, load_bundle
from maskctl.errors import BundleError, MaskctlError
from maskctl.masking.resident import ResidentModel
from maskctl.models import load_tokenizer
from maskctl.tasks.card import TaskCard
from maskctl.tasks.task import Task
from maskctl.training.evaluate import check_head, collect_scores, load_base, make_loader, resolve_device


@dataclass
class Classification:
    label: str
    score: float
    probabilities: dict[str, float]


@dataclass
class Tagging:
    tokens: list[str]
    tags: list[str]
    scores: list[float]
    entities: list[dict[str, Any]] = field(default_factory=list)  # {type, start, end, text} (word spans)


@dataclass
class Choice:
    choice: int
    label: str
    score: float
    probabilities: list[float]


@dataclass
class _Entry:
    bundle: Bundle
    task: Task
    net: torch.nn.Module  # the task model of this bundle's kind, sharing the resident encoder


class MaskedModel:
    """Serve several bundles from one base model; see the module docstring."""

    def __init__(self, entries: dict[str, _Entry], resident: ResidentModel, tokenizers: dict, device) -> None:
        self._entries = entries
        self._resident = resident
        self._tokenizers = tokenizers
        self.device = device
        self.switch_seconds: list[float] = []

    @classmethod
    def from_bundles(cls, paths: Iterable[str | Path], model: str | None = None, device: str = "auto") -> MaskedModel:
        """Load the base model once and the given bundles; refuse bundles of another base."""
        bundles = [load_bundle(p) for p in paths]
        if not bundles:
            raise MaskctlError("no bundle given", "pass one or more *.bundle files")
        names = [b.task_name for b in bundles]
        for name in names:
            if names.count(name) > 1:
                raise BundleError(f"two bundles for task {name!r}", "pass one bundle per task (or use maskctl ensemble)")
        dev = resolve_device(device)
        # Load the base with a kind whose encoder keeps BERT's pooler, so every kind can share it.
        order = sorted(bundles, key=lambda b: b.meta["task"]["kind"] == "token-tagging")
        base_net, source, _ = load_base({**order[0].meta, "path": str(order[0].path)}, model, dev)
        prefix = base_net.base_model_prefix
        encoder = getattr(base_net, prefix)
        entries, tokenizers, nets = {}, {}, {}
        for bundle in bundles:
            task = Task.from_card(TaskCard.from_dict(bundle.meta["task"]))
            key = (task.kind.auto_class, len(task.labels))
            if key not in nets:
                nets[key] = base_net if bundle is order[0] else _shared_head_model(base_net, task, prefix, encoder, dev)
            check_head(nets[key], bundle)
            found = fingerprint(nets[key], bundle.meta["base_model"]["fingerprint_layers"])
            if found != bundle.fingerprint:
                raise BundleError(f"{bundle.path} was trained on another base model than {order[0].path}",
                                  "serve together only bundles of the same base model")
            entries[task.name] = _Entry(bundle=bundle, task=task, net=nets[key])
            if task.kind.name not in tokenizers:
                tokenizers[task.kind.name] = load_tokenizer(source, **task.kind.tokenizer_kwargs)
        return cls(entries, ResidentModel(base_net), tokenizers, dev)

    @property
    def tasks(self) -> list[str]:
        return list(self._entries)

    def task(self, name: str) -> Task:
        if name not in self._entries:
            raise MaskctlError(f"no bundle for task {name!r}", f"loaded tasks: {', '.join(self._entries)}")
        return self._entries[name].task

    def activate(self, name: str) -> None:
        """Make ``name``'s mask and head current (a no-op if it already is)."""
        entry = self._entries[self.task(name).name]
        if self._resident.active == name:
            return
        tick = time.perf_counter()
        self._resident.apply(entry.bundle.masks, entry.bundle.head, key=name, model=entry.net)
        self.switch_seconds.append(time.perf_counter() - tick)

    @torch.inference_mode()
    def predict(self, name: str, inputs: Sequence[Any], batch_size: int = 32) -> list:
        """Predictions for ``inputs``: texts (or pairs) for classification, texts or token lists
        for tagging, ``{"context", "endings"}`` for multiple choice."""
        task = self.task(name)
        self.activate(name)
        entry = self._entries[name]
        examples = [to_example(task, item) for item in inputs]
        if not examples:
            return []
        tokenizer = self._tokenizers[task.kind.name]
        args = entry.bundle.meta.get("training", {})
        features = task.kind.encode(task.card, tokenizer, examples, int(args.get("max_length", 128)),
                                    {"word_piece": args.get("word_piece", "last")})
        loader = make_loader(features, task.kind.collate(tokenizer), batch_size)
        scores, _ = collect_scores(entry.net, loader, task, self.device)
        return [_result(task, ex, s) for ex, s in zip(examples, scores)]

    def close(self) -> None:
        """Restore the pristine base weights."""
        self._resident.restore()


def to_example(task: Task, item: Any) -> dict[str, Any]:
    """A canonical example (with a placeholder gold label) from one user input."""
    kind, labels = task.card.kind, task.labels
    if kind == "sequence-classification":
        if isinstance(item, dict):
            text, pair = item.get("text"), item.get("text_pair")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            text, pair = item
        else:
            text, pair = item, None
        if not isinstance(text, str):
            raise ValueError('needs "text" (and optionally "text_pair")')
        return {"text": text, "text_pair": pair, "label": labels[0]}
    if kind == "token-tagging":
        tokens = item.get("tokens", item.get("text")) if isinstance(item, dict) else item
        tokens = tokens.split() if isinstance(tokens, str) else tokens
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise ValueError('needs "tokens" (a list of words) or "text"')
        return {"tokens": tokens, "tags": [labels[0]] * len(tokens)}
    if not isinstance(item, dict) or not isinstance(item.get("endings"), list) or "context" not in item:
        raise ValueError('needs "context" and "endings" (a list)')
    if len(item["endings"]) != len(labels):
        raise ValueError(f"needs {len(labels)} endings")
    return {"context": str(item["context"]), "endings": [str(e) for e in item["endings"]], "label": labels[0]}


def _result(task: Task, example: dict[str, Any], scores: torch.Tensor):
    probs = scores.softmax(-1)
    labels = task.labels
    if task.card.kind == "sequence-classification":
        best = int(probs.argmax())
        return Classification(labels[best], float(probs[best]), {lab: float(p) for lab, p in zip(labels, probs)})
    if task.card.kind == "multiple-choice":
        best = int(probs.argmax())
        return Choice(best, labels[best], float(probs[best]), [float(p) for p in probs])
    from seqeval.metrics.sequence_labeling import get_entities

    kept = len(scores)  # words past max_length have no prediction: tagged "O", score 0
    tags = [labels[int(i)] for i in probs.argmax(-1)] + ["O"] * (len(example["tokens"]) - kept)
    confidence = [float(p) for p in probs.max(-1).values] + [0.0] * (len(example["tokens"]) - kept)
    tokens = example["tokens"]
    entities = [{"type": kind, "start": start, "end": end + 1, "text": " ".join(tokens[start:end + 1])}
                for kind, start, end in get_entities(tags)]
    return Tagging(tokens=tokens, tags=tags, scores=confidence, entities=entities)


def _shared_head_model(base_net: torch.nn.Module, task: Task, prefix: str, encoder: torch.nn.Module, device):
    """A task model of ``task``'s kind whose encoder is the resident one; only its head is new."""
    import transformers
    from accelerate import init_empty_weights

    config = base_net.config.__class__.from_dict(base_net.config.to_dict())
    config.num_labels = len(task.labels)
    config.id2label = dict(enumerate(task.labels))
    config.label2id = {label: i for i, label in enumerate(task.labels)}
    with init_empty_weights():
        net = getattr(transformers, task.kind.auto_class).from_config(config)
    setattr(net, prefix, encoder)
    for name, module in net.named_modules():  # materialise the head only; its values come from bundles
        if name != prefix and not name.startswith(prefix + ".") and any(
                p.device.type == "meta" for p in module.parameters(recurse=False)):
            module.to_empty(device=device, recurse=False)
    return net.eval()
