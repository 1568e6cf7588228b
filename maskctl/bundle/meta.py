"""The typed self-description of a bundle: one dataclass per part, read from the stored JSON of
any format version in one place (``BundleMeta.from_dict``), with the fallbacks for fields older
bundles lack stated once (``TrainingRecord``). The JSON (``Bundle.meta``) stays the on-disk
contract and is written unchanged; code that reads a bundle asks ``Bundle.info`` /
``CodedMasks.info``. Stored bundles of every format are kept under tests/fixtures/bundles and
must keep loading (tests/bundle/test_fixtures.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from maskctl.bundle.portable import local_view
from maskctl.choices import EVAL_BATCH_SIZE, MAX_LENGTH, WORD_PIECES
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
        if "spec" not in self.source:  # hand-made metadata: labels and masks read, the base is unknown
            raise BundleError(
                "the bundle metadata names no base model (base_model.source.spec)",
                "pass --model, or train the bundle again",
            )
        return self.source["spec"]

    @property
    def kind(self) -> str | None:
        return self.source.get("kind")

    @property
    def location(self) -> str | None:
        return self.source.get("location")

    @property
    def found_through(self) -> str | None:
        """Which stored hint found the local folder on this machine (``portable.local_view``)."""
        from maskctl.bundle.portable import FOUND

        return self.source.get(FOUND)

    @property
    def identity(self) -> tuple:
        """The base model as any version stored it: a package by alias, a local folder by its
        name (newer bundles store no absolute path), a hub model by id; and the version."""
        kind, location = self.kind, str(self.location)
        name = {"package": self.spec, "path": Path(location.rstrip("/\\")).name}.get(kind, location)
        return kind, name, self.source.get("version")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": dict(self.source),
            "model_type": self.model_type,
            "fingerprint": self.fingerprint,
            "fingerprint_layers": list(self.fingerprint_layers),
            "num_blocks": self.num_blocks,
        }


@dataclass(frozen=True)
class TaskRecord:
    """The task card the bundle stores (``TaskCard.to_dict()``), so that a bundle describes its
    task; the fields every reader needs, typed."""

    card: dict[str, Any]

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def kind(self) -> str | None:
        return self.card.get("kind")

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    @property
    def metric(self) -> str | None:
        return self.card.get("metric")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.card)


@dataclass(frozen=True)
class LayerRecord:
    """One masked matrix: its shape, sparsities, and (written by ``save_bundle``) its coding."""

    name: str
    shape: tuple[int, ...]
    init_sparsity: float | None = None
    final_sparsity: float | None = None
    coding: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LayerRecord:
        return cls(
            name=raw["name"],
            shape=tuple(int(d) for d in raw["shape"]),
            init_sparsity=raw.get("init_sparsity"),
            final_sparsity=raw.get("final_sparsity"),
            coding=raw.get("coding"),
        )

    @property
    def weights(self) -> int:
        return math.prod(self.shape)

    @property
    def coding_order(self) -> str | None:
        return (self.coding or {}).get("order")

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "shape": list(self.shape)}
        for key in ("init_sparsity", "final_sparsity", "coding"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class MaskRecord:
    """How the masks were made (``MaskConfig`` + the block ids it resolved to + the generator of
    the initial scores); every field None in bundles that predate it."""

    threshold: float | None = None
    init_sparsity: float | None = None
    blocks: str | None = None
    head: str | None = None
    seed: int | None = None
    block_ids: list[int] | None = None
    generator: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> MaskRecord:
        raw = raw or {}
        return cls(**{f.name: raw.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __bool__(self) -> bool:  # a bundle without mask settings (hand-made, or very old)
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass(frozen=True)
class TunedRecord:
    """The base parameters trained beside the mask (``--also-train``; ``masking/tuned.py``):
    which option chose them, their names (stored as float16 deltas under ``tuned/``), and the
    fingerprint of their pristine values, checked against the base like the masked weights'."""

    also_train: str
    tensors: list[str]
    fingerprint: str

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TunedRecord | None:
        if not raw:
            return None
        return cls(also_train=raw["also_train"], tensors=list(raw["tensors"]), fingerprint=raw["fingerprint"])

    def to_dict(self) -> dict[str, Any]:
        return {"also_train": self.also_train, "tensors": list(self.tensors), "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class MetricsRecord:
    """The run's dev metrics, dev history, the evaluation the output kept, and its loss curve;
    ``scores(split)`` for any split stored."""

    dev: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    kept: dict[str, Any] | None = None
    curve: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> MetricsRecord:
        raw = dict(raw or {})
        return cls(
            dev=dict(raw.get("dev") or {}),
            history=list(raw.get("history") or []),
            kept=raw.get("kept"),
            curve=raw.get("curve"),
            raw=raw,
        )

    def scores(self, split: str) -> dict[str, Any] | None:
        return self.raw.get(split)

    def to_dict(self) -> dict[str, Any]:
        return {**self.raw, "dev": self.dev, "history": self.history, "kept": self.kept, "curve": self.curve}


@dataclass(frozen=True)
class TrainingRecord:
    """How the run was made (``TrainArgs.record()``), with the encoding settings every reader
    needs and their fallbacks for bundles that predate them."""

    max_length: int = MAX_LENGTH
    word_piece: str = WORD_PIECES[0]
    eval_batch_size: int = EVAL_BATCH_SIZE
    data_dir: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TrainingRecord:
        raw = dict(raw or {})
        return cls(
            max_length=int(raw.get("max_length") or MAX_LENGTH),
            word_piece=raw.get("word_piece") or WORD_PIECES[0],
            eval_batch_size=int(raw.get("eval_batch_size") or EVAL_BATCH_SIZE),
            data_dir=raw.get("data_dir"),
            raw=raw,
        )

    @property
    def kind_options(self) -> dict[str, Any]:
        return {"word_piece": self.word_piece}

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    def features(
        self, task, split: str, tokenizer, data_dir: str | Path | None = None, limit: int | None = None, stage=None
    ):
        """``split`` encoded exactly as the run encoded its data (max length, word piece);
        ``stage`` as ``Task.features`` takes it (progress of reading and tokenising)."""
        return task.features(
            split,
            tokenizer,
            self.max_length,
            data_dir=data_dir or self.data_dir,
            limit=limit,
            options=self.kind_options,
            stage=stage,
        )


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
        return cls(
            steps=[int(s) for s in curve["step"]],
            loss=[float(v) for v in curve["loss"]],
            every=int(curve.get("every", 1)),
            evaluations=list(metrics.get("history") or []),
            kept_step=(metrics.get("kept") or {}).get("step"),
        )


@dataclass(frozen=True)
class BundleMeta:
    """A bundle's self-description: the trainer builds one and writes ``to_dict()``; every reader
    gets one from ``from_dict`` (through ``Bundle.info`` / ``CodedMasks.info``, parsed once)."""

    format_version: int
    base_model: BaseModelInfo
    task: TaskRecord
    layers: list[LayerRecord]
    mask: MaskRecord
    training: TrainingRecord
    metrics: MetricsRecord
    head_tensors: list[str] = field(default_factory=list)
    sparsity: dict[str, float] = field(default_factory=dict)
    maskctl_version: str | None = None
    tuned: TunedRecord | None = None  # None: the mask alone (every bundle before format 3)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str | Path = "the bundle") -> BundleMeta:
        """Read the JSON of any format version (1: packbits masks, 2: coded masks, 3: with tuned
        tensors; the parts read here are the same in all). When ``where`` is the bundle's file, the folders its
        ``local`` hints find from there are filled in (``portable.local_view``)."""
        raw = local_view(raw, where)
        try:
            base = raw["base_model"]
            return cls(
                format_version=int(raw.get("format_version", 1)),
                base_model=BaseModelInfo(
                    source=dict(base.get("source") or {}),
                    fingerprint=base["fingerprint"],
                    fingerprint_layers=list(base.get("fingerprint_layers", [])),
                    model_type=base.get("model_type"),
                    num_blocks=base.get("num_blocks"),
                ),
                task=TaskRecord(dict(raw["task"])),
                layers=[LayerRecord.from_dict(layer) for layer in raw.get("layers", [])],
                mask=MaskRecord.from_dict(raw.get("mask")),
                training=TrainingRecord.from_dict(raw.get("training")),
                metrics=MetricsRecord.from_dict(raw.get("metrics")),
                head_tensors=list(raw.get("head_tensors") or []),
                sparsity=dict(raw.get("sparsity") or {}),
                maskctl_version=raw.get("maskctl_version"),
                tuned=TunedRecord.from_dict(raw.get("tuned")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"{where}: the bundle metadata lacks {exc}", "the bundle is damaged; train it again"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON (``save_bundle`` adds the format, the version and the layers' coding)."""
        return {
            "format_version": self.format_version,
            "base_model": self.base_model.to_dict(),
            "task": self.task.to_dict(),
            "mask": self.mask.to_dict(),
            "layers": [lay.to_dict() for lay in self.layers],
            "head_tensors": list(self.head_tensors),
            "sparsity": dict(self.sparsity),
            "training": self.training.to_dict(),
            "metrics": self.metrics.to_dict(),
            **({"maskctl_version": self.maskctl_version} if self.maskctl_version else {}),
            **({"tuned": self.tuned.to_dict()} if self.tuned else {}),
        }

    @property
    def task_name(self) -> str:
        return self.task.name

    @property
    def masked_weights(self) -> int:
        """Weights under a mask (one bit each at most): the denominator of every size figure."""
        return sum(layer.weights for layer in self.layers)

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    @property
    def dev(self) -> dict[str, Any]:
        return dict(self.metrics.dev)

    @property
    def curve(self) -> TrainingCurve | None:
        """The loss curve and dev history; None for bundles that predate loss curves."""
        return TrainingCurve.from_metrics(self.metrics.to_dict())


class Described:
    """For the classes that hold a bundle's stored JSON as ``meta`` (``Bundle``, ``CodedMasks``,
    ``MaskReader``): its typed view, parsed once for as long as ``meta`` is the same object."""

    meta: dict[str, Any]
    path: Path | None

    @property
    def info(self) -> BundleMeta:
        cached = self.__dict__.get("_info")  # (the meta object it was parsed from, its path, the record)
        if cached is None or cached[0] is not self.meta or cached[1] != self.path:
            cached = (self.meta, self.path, BundleMeta.from_dict(self.meta, self.path or "the bundle"))
            self.__dict__["_info"] = cached
        return cached[2]
