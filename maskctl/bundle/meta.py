"""The typed self-description of a bundle: one dataclass per part, read from the stored JSON of
any format version in one place (``BundleMeta.from_dict``), with the fallbacks for fields older
bundles lack stated once (``TrainingRecord``). The JSON (``Bundle.meta``) stays the on-disk
contract and is written unchanged; code that reads a bundle asks ``Bundle.info`` /
``CodedMasks.info``. Stored bundles of every format are kept under tests/fixtures/bundles and
must keep loading (tests/bundle/test_fixtures.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.bundle.portable import local_view
from maskctl.errors import BundleError


@dataclass(frozen=True)
class BaseModelInfo:
    """The model the masks were learned on, and the fingerprint of its masked weights."""

    source: dict[str, Any]  # spec, kind, location, version; no absolute path since bundle/portable.py
    fingerprint: str
    fingerprint_layers: list[str]
    model_type: str | None = None
    num_blocks: int | None = None

    @property
    def spec(self) -> str:
        return self.source["spec"]


@dataclass(frozen=True)
class TrainingRecord:
    """How the run was made (``TrainArgs.record()``), with the encoding settings every reader
    needs and their fallbacks for bundles that predate them."""

    max_length: int = 128
    word_piece: str = "last"
    eval_batch_size: int = 64
    data_dir: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrainingRecord:
        raw = dict(raw or {})
        return cls(max_length=int(raw.get("max_length") or 128), word_piece=raw.get("word_piece") or "last",
                   eval_batch_size=int(raw.get("eval_batch_size") or 64), data_dir=raw.get("data_dir"), raw=raw)

    @property
    def kind_options(self) -> dict[str, Any]:
        return {"word_piece": self.word_piece}

    def features(self, task, split: str, tokenizer, data_dir: str | Path | None = None, limit: int | None = None):
        """``split`` encoded exactly as the run encoded its data (max length, word piece)."""
        return task.features(split, tokenizer, self.max_length, data_dir=data_dir or self.data_dir, limit=limit,
                             options=self.kind_options)


@dataclass(frozen=True)
class TrainingCurve:
    """How the run went: the training loss against the optimizer step (each point the mean of
    ``every`` steps, ending at its step) and each dev evaluation, with the step the output holds.
    Read from ``metrics`` of a bundle or of a finetuned folder's ``maskctl_training.json``."""

    steps: list[int]
    loss: list[float]
    every: int
    evaluations: list[dict[str, Any]]  # the dev history: step, epoch, dev metrics
    kept_step: int | None = None

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> TrainingCurve | None:
        """None for outputs written before loss curves were stored."""
        curve = metrics.get("curve")
        if not curve:
            return None
        return cls(steps=[int(s) for s in curve["step"]], loss=[float(v) for v in curve["loss"]],
                   every=int(curve.get("every", 1)), evaluations=list(metrics.get("history") or []),
                   kept_step=(metrics.get("kept") or {}).get("step"))


@dataclass(frozen=True)
class BundleMeta:
    format_version: int
    base_model: BaseModelInfo
    task: dict[str, Any]  # the task card (TaskCard.to_dict()), so the bundle describes its task
    layers: list[dict[str, Any]]  # name, shape, sparsities, coding
    mask: dict[str, Any]  # MaskConfig.to_dict() + block_ids + generator
    training: TrainingRecord
    metrics: dict[str, Any]  # dev, history, kept
    head_tensors: list[str] = field(default_factory=list)
    sparsity: dict[str, float] = field(default_factory=dict)
    maskctl_version: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str | Path = "the bundle") -> BundleMeta:
        """Read the JSON of any format version (1: packbits masks, 2: coded masks; the parts
        read here are the same in both). When ``where`` is the bundle's file, the folders its
        ``local`` hints find from there are filled in (``portable.local_view``)."""
        raw = local_view(raw, where)
        try:
            base = raw["base_model"]
            return cls(format_version=int(raw.get("format_version", 1)),
                       base_model=BaseModelInfo(source=dict(base["source"]), fingerprint=base["fingerprint"],
                                                fingerprint_layers=list(base.get("fingerprint_layers", [])),
                                                model_type=base.get("model_type"), num_blocks=base.get("num_blocks")),
                       task=dict(raw["task"]), layers=list(raw.get("layers", [])), mask=dict(raw.get("mask") or {}),
                       training=TrainingRecord.from_dict(raw.get("training")), metrics=dict(raw.get("metrics") or {}),
                       head_tensors=list(raw.get("head_tensors") or []), sparsity=dict(raw.get("sparsity") or {}),
                       maskctl_version=raw.get("maskctl_version"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: the bundle metadata lacks {exc}", "the bundle is damaged; train it again") from None

    @property
    def task_name(self) -> str:
        return self.task["name"]

    @property
    def masked_weights(self) -> int:
        """Weights under a mask (one bit each at most): the denominator of every size figure."""
        return sum(math.prod(int(dim) for dim in layer["shape"]) for layer in self.layers)

    @property
    def labels(self) -> list[str]:
        return list(self.task["labels"])

    @property
    def dev(self) -> dict[str, Any]:
        return dict(self.metrics.get("dev") or {})

    @property
    def curve(self) -> TrainingCurve | None:
        """The loss curve and dev history; None for bundles that predate loss curves."""
        return TrainingCurve.from_metrics(self.metrics)


class Described:
    """For the classes that hold a bundle's stored JSON as ``meta`` (``Bundle``, ``CodedMasks``,
    ``MaskReader``): its typed view."""

    meta: dict[str, Any]
    path: Path | None

    @property
    def info(self) -> BundleMeta:
        return BundleMeta.from_dict(self.meta, self.path or "the bundle")
