"""How much memory N tasks cost: finetuning vs masking (Zhao et al. 2020, Figure 3 / Table 8).

The argument for masking is arithmetic: finetuning stores one full fp32 model per task, masking
one shared fp32 base plus one bit per masked weight per task. This module does that arithmetic
from a model's real configuration, instantiated on PyTorch's meta device (shapes, no weights,
no download), with maskctl's own layer selection (``masking.targets``) so that the count is
exactly what ``maskctl train`` would mask. ``--bundles`` replaces the formula by real files.

Counting convention (the one that reproduces the paper for bert-base-uncased, 2 labels):

* fp32 = 4 bytes per value, MB = 10^6 bytes. BERT-base has 109.48M parameters = 437.9 MB
  (the paper's 438 MB; in MiB it would be 417.6, so the paper's MB is 10^6 bytes).
* finetuning, per task (or ensemble member): every parameter of the task model, weights and
  biases, embeddings, LayerNorm, pooler and classifier: 4 x 437.9 = 1751.7 MB (paper: 1752).
* masking: one copy of the shared base (the task model's parameters that the bare encoder has)
  plus, per task or member, 1 bit per masked weight, packed per layer to whole bytes as bundles
  store them, plus the fp32 head values the base lacks (classifier weight and bias). Masked by
  default: Q, K, V, attention-output, FFN-in and FFN-out weights of every block but the lowest
  two (2-11 of 12), the pooler dense weight and the classifier weight; never biases, LayerNorm
  or embeddings. 437.9 + 4 x 8.93 = 473.6 MB (paper: 474). Masking all 12 blocks would give
  480.7 MB (+1.4%), so the paper counted the blocks it masked, 2-11.
* not counted by the formula: bundle metadata (JSON self-description, safetensors header),
  tokenizer files, activations. ``--bundles`` counts whole files, metadata included.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from maskctl.errors import BundleError, MaskctlError, ModelError
from maskctl.models import load_config as load_model_config
from maskctl.models import quiet_transformers, resolve_model, stored_source

BYTES_PER_FLOAT = 4  # fp32
MB = 10**6  # the paper's 438 MB = 109.48M x 4 bytes / 10^6
DEFAULT_SIZE_MODEL = "bert-base-uncased"
DEFAULT_NUM_LABELS = 2

_CONFIG_DIR = Path(__file__).resolve().parents[1] / "sizing_configs"  # package data beside the code packages
# Hub ids whose config.json ships with maskctl (verbatim copies), so they are counted offline.
PACKAGED_CONFIGS = {
    "bert-base-uncased": "bert-base-uncased.json",
    "google-bert/bert-base-uncased": "bert-base-uncased.json",
    "roberta-base": "roberta-base.json",
    "FacebookAI/roberta-base": "roberta-base.json",
    "distilbert-base-uncased": "distilbert-base-uncased.json",
    "distilbert/distilbert-base-uncased": "distilbert-base-uncased.json",
}


@dataclass(frozen=True)
class ModelCount:
    """What one task costs under each method, counted from a meta-device model."""

    model: str
    config_from: str  # where the config came from, said in the output
    model_type: str
    num_labels: int
    n_blocks: int
    block_ids: tuple[int, ...]
    total_params: int  # one finetuned copy: every parameter of the task model
    base_params: int  # shared by all masked tasks: what the bare encoder also has
    head_params: int  # per masked task, fp32: the task model's parameters the base lacks
    head_names: tuple[str, ...]
    masked_layers: tuple[tuple[str, int], ...]  # (module name, weight count), 1 bit each
    head_layers: tuple[str, ...] = ()  # the masked pooler / output layer among masked_layers

    @property
    def masked_weights(self) -> int:
        return sum(n for _, n in self.masked_layers)

    @property
    def mask_bytes(self) -> int:
        """One task's packed masks: ``mask_coding.pack_mask`` rounds each layer up to whole bytes."""
        return sum((n + 7) // 8 for _, n in self.masked_layers)

    @property
    def per_task_mask_bytes(self) -> int:
        return self.mask_bytes + BYTES_PER_FLOAT * self.head_params

    def finetune_bytes(self, copies: int) -> int:
        return copies * BYTES_PER_FLOAT * self.total_params

    def masking_bytes(self, copies: int) -> int:
        return BYTES_PER_FLOAT * self.base_params + copies * self.per_task_mask_bytes

    def describe(self) -> str:
        """The counting convention in words, with this model's numbers."""
        blocks = _ranges(self.block_ids) or "none"
        return (
            f"fp32 = 4 bytes, MB = 10^6 bytes. Finetuning: per task every parameter of the task model "
            f"({self.total_params:,}: weights and biases, embeddings, LayerNorm, pooler, head). Masking: one "
            f"shared fp32 base ({self.base_params:,}) + per task 1 bit per masked weight "
            f"({self.masked_weights:,} weights in {len(self.masked_layers)} layers: Q, K, V, attention-out, "
            f"FFN-in, FFN-out of blocks {blocks} of 0-{self.n_blocks - 1}, plus "
            f"{' and '.join(self.head_layers) or 'no head layer'}; weights "
            f"only, never biases, LayerNorm or embeddings; packed per layer to whole bytes) + the head's "
            f"fp32 values the base lacks ({self.head_params:,}: {', '.join(self.head_names) or 'none'}). "
            f"Not counted: bundle metadata and headers, tokenizer, activations."
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["masked_layers"] = [{"name": name, "weights": n} for name, n in self.masked_layers]
        data.update(
            masked_weights=self.masked_weights,
            mask_bytes=self.mask_bytes,
            per_task_mask_bytes=self.per_task_mask_bytes,
            convention=self.describe(),
        )
        return data


@dataclass(frozen=True)
class SizeRow:
    """Cumulative cost of ``copies`` task models (tasks, or ensemble members of one task)."""

    copies: int
    finetune_params: int
    finetune_bytes: int
    masking_float_params: int  # shared base + the heads
    masking_mask_bits: int  # 1-bit mask entries
    masking_bytes: int

    @property
    def ratio(self) -> float:
        return self.finetune_bytes / self.masking_bytes if self.masking_bytes else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "finetune_mb": self.finetune_bytes / MB,
            "masking_mb": self.masking_bytes / MB,
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class BundleSize:
    """One real bundle on disk: its whole file against the weights it masks."""

    path: str
    task: str
    num_labels: int
    file_bytes: int
    masked_weights: int
    fingerprint: str
    base: dict[str, Any]  # the bundle's base_model.source

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.file_bytes / self.masked_weights if self.masked_weights else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bits_per_masked_weight": self.bits_per_weight}


def count_model(
    spec: str | None = None, num_labels: int = DEFAULT_NUM_LABELS, mask_blocks: str | None = None
) -> ModelCount:
    """Count ``spec`` (shipped config, local folder, packaged MiniLM or hub id) on the meta device."""
    if num_labels < 1:
        raise MaskctlError(f"--num-labels must be at least 1, got {num_labels}", "pass e.g. --num-labels 2")
    return _count(spec or DEFAULT_SIZE_MODEL, num_labels, mask_blocks)


# Cached per process: --bundles asks once per bundle, and a meta build costs about a second.
@lru_cache(maxsize=16)
def _count(spec: str, num_labels: int, mask_blocks: str | None) -> ModelCount:
    from maskctl.masking.targets import find_targets, num_blocks, parse_blocks

    config, config_from = load_config(spec, num_labels)
    task_model, base_model = _meta_models(config, spec)
    n_blocks = num_blocks(task_model)
    try:
        block_ids = parse_blocks(mask_blocks, n_blocks)
    except ValueError as exc:
        raise MaskctlError(str(exc), "use --mask-blocks 2-11, all, none, top:K, bottom:K or 2,3,5") from exc
    targets = find_targets(task_model, block_ids)
    layers = tuple((name, int(task_model.get_submodule(name).weight.numel())) for name in targets.all)
    prefix = getattr(task_model, "base_model_prefix", "")
    base_names = {name for name, _ in base_model.named_parameters()}
    total = head = 0
    head_names = []
    for name, param in task_model.named_parameters():  # tied parameters are listed once
        total += param.numel()
        inner = name[len(prefix) + 1 :] if prefix and name.startswith(prefix + ".") else None
        if inner not in base_names:
            head += param.numel()
            head_names.append(name)
    return ModelCount(
        model=spec,
        config_from=config_from,
        model_type=config.model_type,
        num_labels=num_labels,
        n_blocks=n_blocks,
        block_ids=tuple(block_ids),
        total_params=total,
        base_params=total - head,
        head_params=head,
        head_names=tuple(head_names),
        masked_layers=layers,
        head_layers=tuple(n for n in (targets.pooler, targets.output) if n),
    )


def load_config(spec: str, num_labels: int = DEFAULT_NUM_LABELS):
    """The transformers config of ``spec`` and a phrase saying where it came from; never weights.

    The three paper models come from the config.json copies shipped in ``sizing_configs/`` (so
    they work offline); anything else goes through ``resolve_model`` and ``AutoConfig``.
    """
    from transformers import AutoConfig

    source = resolve_model(spec)
    if source.kind == "hub" and spec in PACKAGED_CONFIGS:
        data = json.loads((_CONFIG_DIR / PACKAGED_CONFIGS[spec]).read_text(encoding="utf-8"))
        model_type = data.pop("model_type")
        with quiet_transformers():
            config = AutoConfig.for_model(model_type, **data, num_labels=num_labels)
        return config, f"config.json of {spec} shipped with maskctl (offline)"
    config = load_model_config(source, num_labels=num_labels)
    where = {"hub": "the hub (config only)", "path": "the folder", "package": f"the package ({source.location})"}
    return config, f"config.json from {where[source.kind]}" + (f" {source.location}" if source.kind == "path" else "")


def _meta_models(config, spec: str):
    """The task model and the bare encoder of ``config``, with every tensor on the meta device."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    try:
        with quiet_transformers(), torch.device("meta"):
            return AutoModelForSequenceClassification.from_config(config), AutoModel.from_config(config)
    except (ValueError, KeyError, ImportError) as exc:
        raise ModelError(
            f"cannot build {spec!r} ({config.model_type}) for sequence classification "
            f"({type(exc).__name__}: {str(exc)[:100]})",
            "use a BERT-, RoBERTa- or DistilBERT-like encoder",
        ) from exc


def growth(count: ModelCount, n_tasks: int) -> list[SizeRow]:
    """Cumulative cost of 1..n_tasks tasks under each method (Figure 3, Table 8)."""
    if n_tasks < 1:
        raise MaskctlError(f"--tasks must be at least 1, got {n_tasks}", "pass e.g. --tasks 11")
    return [row(count, n) for n in range(1, n_tasks + 1)]


def ensemble(count: ModelCount, members: int) -> SizeRow:
    """A ``members``-model ensemble of one task: K finetuned copies vs one base and K masks."""
    if members < 1:
        raise MaskctlError(f"--ensemble must be at least 1, got {members}", "pass e.g. --ensemble 4")
    return row(count, members)


def row(count: ModelCount, copies: int) -> SizeRow:
    return SizeRow(
        copies=copies,
        finetune_params=copies * count.total_params,
        finetune_bytes=count.finetune_bytes(copies),
        masking_float_params=count.base_params + copies * count.head_params,
        masking_mask_bits=copies * count.masked_weights,
        masking_bytes=count.masking_bytes(copies),
    )


def read_bundles(paths: list[str | Path]) -> list[BundleSize]:
    """Size real bundles from their file size and metadata (no tensor is loaded)."""
    from maskctl.bundle.format import read_meta
    from maskctl.bundle.hub_ref import resolve_bundle_ref
    from maskctl.bundle.meta import BundleMeta

    sizes = []
    for path in map(resolve_bundle_ref, paths):  # hf:// references: files in the Hugging Face cache
        info = BundleMeta.from_dict(read_meta(path), path)
        sizes.append(
            BundleSize(
                path=str(path),
                task=info.task_name,
                num_labels=len(info.labels),
                file_bytes=Path(path).stat().st_size,
                masked_weights=info.masked_weights,
                fingerprint=info.base_model.fingerprint,
                base=info.base_model.source,
            )
        )
    if len({b.fingerprint for b in sizes}) > 1:
        raise BundleError(
            "these bundles were trained on different base models (their fingerprints differ), so "
            "they cannot share one base",
            "size the bundles of one base model together",
        )
    return sizes


def bundle_base(bundle: BundleSize) -> str:
    """The ``--model`` spec that finds a bundle's base again (alias, folder or hub id)."""
    source = bundle.base
    if source.get("kind") == "path":  # a folder name only in newer bundles: found from the bundle's folder
        return stored_source(source).location
    return source["spec"] if source.get("kind") == "package" else source["location"]


def bundle_growth(
    bundles: list[BundleSize], spec: str | None = None, mask_blocks: str | None = None
) -> tuple[ModelCount, list[SizeRow]]:
    """Cumulative cost of the bundles' tasks: real files for masking, the formula for finetuning.

    The finetuned side counts each task with its own number of labels; the base is ``spec`` or,
    by default, the model the first bundle names.
    """
    if not bundles:
        raise MaskctlError("no bundles given", "pass --bundles masks/*.bundle")
    spec = spec or bundle_base(bundles[0])
    counts = [count_model(spec, b.num_labels, mask_blocks) for b in bundles]
    base_bytes = BYTES_PER_FLOAT * counts[0].base_params
    rows, ft_params, ft_bytes, files, heads, bits = [], 0, 0, 0, 0, 0
    for n, (bundle, count) in enumerate(zip(bundles, counts), start=1):
        ft_params += count.total_params
        ft_bytes += count.finetune_bytes(1)
        files += bundle.file_bytes
        heads += count.head_params
        bits += bundle.masked_weights
        rows.append(
            SizeRow(
                copies=n,
                finetune_params=ft_params,
                finetune_bytes=ft_bytes,
                masking_float_params=count.base_params + heads,
                masking_mask_bits=bits,
                masking_bytes=base_bytes + files,
            )
        )
    return counts[0], rows


def plot_growth(rows: list[SizeRow], out: str | Path, title: str = "", unit: str = "tasks") -> Path:
    """Write Figure 3 as a PNG: cumulative parameters and memory vs number of tasks, atomically.

    Uses matplotlib's object API (a bare ``Figure`` renders with Agg) instead of pyplot, so the
    caller's backend and any open figures are left alone.
    """
    from matplotlib.figure import Figure

    from maskctl.io import atomic_path

    x = [r.copies for r in rows]
    fig = Figure(figsize=(10, 4), layout="constrained")
    params, memory = fig.subplots(1, 2)
    params.plot(x, [r.finetune_params / 1e6 for r in rows], "o-", label="finetuning")
    params.plot(x, [r.masking_float_params / 1e6 for r in rows], "s-", label="masking: fp32 parameters")
    params.plot(
        x,
        [(r.masking_float_params + r.masking_mask_bits) / 1e6 for r in rows],
        "s--",
        label="masking: fp32 + 1-bit mask entries",
    )
    params.set(xlabel=f"number of {unit}", ylabel="cumulative parameters (M)", title="(a) parameters")
    memory.plot(x, [r.finetune_bytes / MB for r in rows], "o-", label="finetuning")
    memory.plot(x, [r.masking_bytes / MB for r in rows], "s-", label="masking")
    memory.set(xlabel=f"number of {unit}", ylabel="cumulative memory (MB = 10^6 bytes)", title="(b) memory")
    for axes in (params, memory):
        axes.grid(alpha=0.3)
        axes.set_ylim(bottom=0)
        axes.legend()
        axes.set_xticks(x if len(x) <= 20 else x[:: max(1, len(x) // 10)])
    if title:
        fig.suptitle(title)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return out


@dataclass(frozen=True)
class SizeReport:
    """What ``maskctl size`` shows: the count of one task model, the cumulative rows, an
    optional ensemble row, the real bundles (when sized from files) and the plot written."""

    count: ModelCount
    rows: list[SizeRow]
    ensemble: SizeRow | None = None
    bundles: list[BundleSize] | None = None  # None: the masking side is the formula
    plot: Path | None = None

    @property
    def source(self) -> str:
        return "bundles" if self.bundles else "formula"

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` payload."""
        return {
            "model": self.count.to_dict(),
            "mb_bytes": MB,
            "source": self.source,
            "tasks": [r.to_dict() for r in self.rows],
            "ensemble": self.ensemble.to_dict() if self.ensemble else None,
            "bundles": [b.to_dict() for b in self.bundles] if self.bundles else None,
            "plot": str(self.plot) if self.plot else None,
        }


def size_tasks(
    bundles: list[str | Path] | None = None,
    tasks: int = 11,
    spec: str | None = None,
    num_labels: int = DEFAULT_NUM_LABELS,
    mask_blocks: str | None = None,
    members: int | None = None,
    plot: Path | None = None,
    overwrite: bool = False,
) -> SizeReport:
    """Finetuning vs masking for 1..``tasks`` tasks by the formula, or for real ``bundles`` (one
    row per file, masking counted as the whole files; ``num_labels`` then comes from each
    bundle's task), plus a ``members``-model ensemble of one task (the first bundle's, with
    bundles) and the cumulative plot written to ``plot`` (refused before any counting when it
    exists and ``overwrite`` is not given)."""
    if plot is not None and Path(plot).exists() and not overwrite:
        raise MaskctlError(f"{plot} already exists", "choose another --plot or pass --overwrite to replace it")
    sized = read_bundles(list(bundles)) if bundles else None
    if sized:
        count, rows = bundle_growth(sized, spec, mask_blocks)
    else:
        count = count_model(spec, num_labels, mask_blocks)
        rows = growth(count, tasks)
    report = SizeReport(count, rows, ensemble(count, members) if members is not None else None, sized, plot)
    if plot is not None:
        plot_growth(rows, plot, title=f"{count.model}: finetuning vs masking")
    return report


def _ranges(ids: tuple[int, ...]) -> str:
    """``(2, 3, 4, 7)`` -> ``2-4, 7``."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs)
