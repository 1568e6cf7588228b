"""Linear mode connectivity of a masked and a finetuned model (Zhao et al. 2020, §6.3, Fig. 6).

The paper evaluates the task metric along the straight line between the weights of a
finetuned model and a masked one,

    W(alpha) = W_finetuned + alpha (W_masked - W_finetuned),   alpha in [0, 1],

and finds no drop in between: the two solutions lie in one connected low-loss region. This
module draws that line and, for reference, the lines from the pretrained model W_0 to each
endpoint (W_0 -> finetuned, W_0 -> masked).

What each endpoint is, exactly:

* finetuned: every parameter of the finetuned folder (embeddings included: finetuning moved
  them), loaded with the bundle's label order;
* masked: the model ``maskctl eval`` scores: the base the bundle names, its head tensors
  loaded, every mask multiplied in (``load_base`` + ``check_head`` + ``apply_masks``), so the
  point alpha = 1 gives ``evaluate_bundle``'s metrics bit for bit;
* pretrained: the base weights. The pretrained model has no task head (the classifier, and any
  other tensor the checkpoint lacks, listed in the bundle's ``head_tensors``), so on each
  pretrained line those tensors are taken from that line's endpoint and stay fixed: only the
  weights the pretrained model has move along it.

Every floating tensor of the task model is interpolated (``torch.lerp``; the endpoints are
copied, not computed, so they are exact). One model object is loaded once and its tensors are
overwritten in place per point (what ``load_state_dict`` does, without a second copy); the
split is read and encoded once, with the bundle's recorded max length and word-piece rule,
and scored by ``evaluate_model``, as in ``maskctl eval``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from maskctl.bundle.format import Bundle, load_bundle
from maskctl.devices import resolve_device
from maskctl.errors import MaskctlError, ModelError
from maskctl.evaluation import evaluate_model
from maskctl.experiments.report import new_figure, save_figure, write_table
from maskctl.masking.model import apply_masks
from maskctl.models import load_config, load_task_model, load_tokenizer, resolve_model
from maskctl.serving.loading import check_head, load_base
from maskctl.version import __version__

# (line, start endpoint, end endpoint); the two pretrained endpoints differ only in their head.
LINES = (
    ("finetuned-masked", "finetuned", "masked"),
    ("pretrained-finetuned", "pretrained+finetuned head", "finetuned"),
    ("pretrained-masked", "pretrained+masked head", "masked"),
)
RECORD = "maskctl_training.json"


class ConnectError(MaskctlError):
    """A finetuned model that cannot be joined to the bundle by a line (task, labels, shapes)."""


@dataclass
class ConnectResult:
    task: str
    split: str
    metric: str
    rows: list[dict[str, Any]]  # one per line and alpha: line, alpha, endpoint, score, metrics
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    def score(self, line: str, alpha: float) -> float:
        return next(r["score"] for r in self.rows if r["line"] == line and r["alpha"] == alpha)


def read_record(folder: Path) -> dict[str, Any] | None:
    """What ``maskctl train --method finetune`` wrote beside the model, if anything."""
    path = folder / RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConnectError(f"{path} is not valid JSON ({exc})", "restore it or delete it") from exc


def check_finetuned(bundle: Bundle, folder: Path, config: Any, record: dict[str, Any] | None) -> list[str]:
    """Refuse a finetuned model of another task, label set or architecture; return notes."""
    where = f"finetuned model {folder}"
    if record is not None:
        task = record.get("task", {})
        if task.get("name") != bundle.task_name or task.get("kind") != bundle.info.task.kind:
            raise ConnectError(
                f"{where} was trained on task {task.get('name')!r}, the bundle on {bundle.task_name!r}",
                "pass a mask and a finetuned model of the same task",
            )
    labels = [config.id2label.get(i, config.id2label.get(str(i))) for i in range(config.num_labels)]
    if labels != bundle.labels:
        raise ConnectError(
            f"{where} has labels {labels}, the bundle {bundle.labels}",
            "pass a mask and a finetuned model of the same task and label order",
        )
    model_type = bundle.info.base_model.model_type
    if model_type and config.model_type != model_type:
        raise ConnectError(
            f"{where} is a {config.model_type} model, the bundle's base a {model_type}",
            "finetune the base model the bundle names",
        )
    notes = []
    if record is not None:
        ours, theirs = bundle.info.training.raw, record.get("training", {})
        for key in ("model", "seed", "max_length", "word_piece"):
            if key in theirs and theirs.get(key) != ours.get(key):
                notes.append(f"the finetuned model's {key} is {theirs.get(key)!r}, the bundle's {ours.get(key)!r}")
    else:
        notes.append(f"{folder} has no {RECORD}: its task and seed are unchecked (labels and shapes are)")
    return notes


def open_finetuned(bundle: Bundle, folder: Path) -> tuple[Any, list[str]]:
    """Resolve a finetuned folder and check it against the bundle: (model source, notes)."""
    try:
        source = resolve_model(str(folder))
    except ModelError as exc:
        raise ConnectError(
            f"finetuned model {folder} does not exist or has no config.json",
            "pass the folder written by maskctl train --method finetune",
        ) from exc
    return source, check_finetuned(bundle, folder, load_config(source), read_record(folder))


def finetuned_state(
    source: Any, task: Any, keys: list[str], shapes: dict[str, tuple[int, ...]], device: torch.device, folder: Path
) -> dict[str, torch.Tensor]:
    """The finetuned folder's tensors ``keys`` (float32 on ``device``), refusing missing or odd ones."""
    net, new_keys = load_task_model(source, task.kind.auto_class, task.labels)
    if new_keys:
        raise ConnectError(
            f"finetuned model {folder} lacks {', '.join(new_keys[:3])}",
            f"pass a folder written by maskctl train --method finetune for this task ({task.name})",
        )
    state = net.state_dict()
    for key in keys:
        if key not in state or tuple(state[key].shape) != shapes[key]:
            found = tuple(state[key].shape) if key in state else "missing"
            raise ConnectError(
                f"finetuned model {folder}: {key} is {found}, the bundle's model has {shapes[key]}",
                "finetune the base model the bundle names",
            )
    return {key: state[key].detach().to(device, torch.float32) for key in keys}


@torch.no_grad()
def _set(
    target: dict[str, torch.Tensor], start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], alpha: float
) -> None:
    """``target = start + alpha (end - start)`` in place; the endpoints copied exactly."""
    for key, tensor in target.items():
        if alpha == 0.0:
            tensor.copy_(start[key])
        elif alpha == 1.0:
            tensor.copy_(end[key])
        else:
            torch.lerp(start[key], end[key], alpha, out=tensor)


def mode_connectivity(
    mask: str | Path,
    finetuned: str | Path,
    points: int = 11,
    split: str = "dev",
    out_dir: str | Path | None = None,
    model: str | None = None,
    data_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    on_point: Callable[[str, float, dict[str, float]], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ConnectResult:
    """Score the three lines at ``points`` evenly spaced alphas; write table and figure to ``out_dir``.
    ``on_point`` hears each point's metrics, ``on_batch(1)`` each evaluation batch (progress)."""
    started = time.perf_counter()
    if points < 2:
        raise MaskctlError(f"--points {points} is too few", "pass at least 2 (both endpoints)")
    bundle = load_bundle(mask)
    folder = Path(finetuned)
    ft_source, notes = open_finetuned(bundle, folder)
    dev = resolve_device(device)

    # The masked endpoint, built as load_masked does, keeping the pretrained weights first.
    net, source, task = load_base(bundle.info, model, dev, where=bundle.path)
    check_head(net, bundle)
    target = {k: v for k, v in net.state_dict().items() if v.is_floating_point()}
    head_keys = set(bundle.info.head_tensors or bundle.head)
    pretrained = {k: v.clone() for k, v in target.items() if k not in head_keys}
    net.load_state_dict(bundle.head, strict=False)
    apply_masks(net, bundle.masks)
    masked = {
        k: pretrained[k] if k in pretrained and torch.equal(v, pretrained[k]) else v.clone() for k, v in target.items()
    }
    shapes = {k: tuple(v.shape) for k, v in target.items()}
    tuned = finetuned_state(ft_source, task, list(target), shapes, dev, folder)
    weights = {
        "finetuned": tuned,
        "masked": masked,
        "pretrained+finetuned head": {k: pretrained.get(k, tuned[k]) for k in target},
        "pretrained+masked head": {k: pretrained.get(k, masked[k]) for k in target},
    }

    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    record = bundle.info.training
    features = record.features(task, split, tokenizer, data_dir)
    batch = batch_size or record.eval_batch_size
    alphas = [i / (points - 1) for i in range(points)]
    done: dict[str, dict[str, float]] = {}  # endpoint -> metrics: each endpoint is scored once
    rows = []
    for line, start, end in LINES:
        for alpha in alphas:
            endpoint = start if alpha == 0.0 else end if alpha == 1.0 else ""
            if endpoint in done:
                metrics = done[endpoint]
            else:
                _set(target, weights[start], weights[end], alpha)
                metrics = evaluate_model(net, task, features, tokenizer, batch, dev, progress=on_batch)
                if endpoint:
                    done[endpoint] = metrics
            rows.append({"line": line, "alpha": alpha, "endpoint": endpoint, **metrics})
            if on_point is not None:
                on_point(line, alpha, metrics)
    result = ConnectResult(
        task=task.name,
        split=split,
        metric=task.card.metric,
        rows=rows,
        notes=notes,
        seconds=time.perf_counter() - started,
    )
    if out_dir is not None:
        meta = {
            "formula": "W(alpha) = W_start + alpha (W_end - W_start) (Zhao et al. 2020, §6.3, Fig. 6)",
            "mask": str(bundle.path),
            "finetuned": str(folder),
            "base_model": source.spec,
            "task": task.name,
            "split": split,
            "examples": len(features),
            "points": points,
            "batch_size": batch,
            "pretrained_head": "the pretrained model has no head: each pretrained line takes the head "
            f"tensors ({', '.join(sorted(head_keys))}) from its endpoint",
            "notes": notes,
            "device": str(dev),
            "maskctl": __version__,
            "seconds": round(result.seconds, 2),
        }
        result.files = write_connect(result, out_dir, meta)
    return result


def write_connect(result: ConnectResult, out_dir: str | Path, meta: dict[str, Any]) -> dict[str, Path]:
    """``connect.{csv,md,json}`` and ``connect.png`` under ``out_dir``."""
    out_dir = Path(out_dir)
    title = f"Mode connectivity on {result.task} ({result.split} {result.metric})"
    files = {
        f"connect.{kind}": path for kind, path in write_table(result.rows, out_dir, "connect", meta, title).items()
    }
    files["connect.png"] = save_figure(connect_figure(result), out_dir / "connect.png")
    return files


def connect_figure(result: ConnectResult) -> Any:
    """Three curves of the task score over alpha in [0, 1], endpoints labelled."""
    fig = new_figure(6.4, 5.0)
    ax = fig.subplots()
    styles = {
        "finetuned-masked": ("finetuned (α=0) → masked (α=1)", "o", "-"),
        "pretrained-finetuned": ("pretrained (α=0) → finetuned (α=1)", "s", "--"),
        "pretrained-masked": ("pretrained (α=0) → masked (α=1)", "^", ":"),
    }
    for line, _, _ in LINES:
        rows = [r for r in result.rows if r["line"] == line]
        label, marker, style = styles[line]
        curve = ax.plot(
            [r["alpha"] for r in rows], [r["score"] for r in rows], marker=marker, linestyle=style, label=label
        )
        for row in (rows[0], rows[-1]):
            name = row["endpoint"].split("+")[0]
            ax.annotate(
                name,
                (row["alpha"], row["score"]),
                textcoords="offset points",
                fontsize="small",
                xytext=(4 if row["alpha"] == 0 else -4, 6),
                ha="left" if row["alpha"] == 0 else "right",
                color=curve[0].get_color(),
            )
    ax.set(
        xlabel="α",
        ylabel=f"{result.split} {result.metric}",
        xlim=(-0.03, 1.03),
        title=f"Mode connectivity: {result.task} (Zhao et al. 2020, Fig. 6)",
    )
    ax.grid(alpha=0.3)
    fig.legend(fontsize="small", loc="outside lower center")
    return fig
