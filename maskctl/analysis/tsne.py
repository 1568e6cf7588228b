"""t-SNE of [CLS] representations: pretrained, masked and finetuned (Zhao et al. 2020, Fig. 4).

The paper projects the final-layer [CLS] vectors of a dev set with t-SNE and finds that both
masking and finetuning turn the pretrained model's mixed cloud into clusters by label: masking
reaches task-specific representations without changing a single weight value.

How: one base model is loaded once (the base the bundle names, its fingerprint checked); its
[CLS] vectors are read first as they are (pretrained), then again with the bundle's masks
multiplied in (masked, the model ``maskctl eval`` scores); the finetuned folder, if given,
is checked like ``analyze connect`` does (same task, labels, architecture). The split is
encoded once with the bundle's recorded max length. Each model gets its own t-SNE (the
embeddings are not comparable across panels, only their clustering is), seeded for
repeatability, and a silhouette score by label, on the raw vectors (cosine) and on the 2-D
map, puts a number on "clusters by label". Sequence classification only: the [CLS] vector
is what its classifier reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskctl.analysis.connect import finetuned_state, open_finetuned
from maskctl.bundle.format import load_bundle
from maskctl.devices import resolve_device
from maskctl.errors import MaskctlError
from maskctl.evaluation import make_loader
from maskctl.experiments.report import new_figure, save_figure, write_table
from maskctl.masking.model import apply_masks
from maskctl.models import load_tokenizer
from maskctl.serving.loading import check_head, load_base
from maskctl.tasks.kinds import get_kind
from maskctl.training.callbacks import TrainCallback, phase
from maskctl.version import __version__


@dataclass
class TsneResult:
    task: str
    split: str
    labels: list[str]
    rows: list[dict[str, Any]]  # one per model: examples, silhouettes
    points: list[dict[str, Any]]  # one per model and example: x, y, label
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # model -> [CLS] rows (not written)
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


@torch.inference_mode()
def cls_vectors(
    model: torch.nn.Module, loader: Any, device: torch.device, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """The last layer's [CLS] (first token) vector of every example, as float32 rows;
    ``progress(1)`` after each batch."""
    model.eval()
    encoder = model.base_model
    out = []
    for batch in loader:
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        out.append(encoder(**inputs).last_hidden_state[:, 0].float().cpu().numpy())
        if progress is not None:
            progress(1)
    return np.concatenate(out)


def project(vectors: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 2-D t-SNE (PCA initialisation; perplexity 30, or less for small sets)."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(1.0, (len(vectors) - 1) / 3))
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
    ).fit_transform(vectors)


def silhouettes(vectors: np.ndarray, points: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2 or len(labels) <= len(set(labels.tolist())):
        return {"silhouette_cls": None, "silhouette_tsne": None}
    return {
        "silhouette_cls": float(silhouette_score(vectors, labels, metric="cosine")),
        "silhouette_tsne": float(silhouette_score(points, labels)),
    }


def tsne_representations(
    mask: str | Path,
    finetuned: str | Path | None = None,
    split: str = "dev",
    max_examples: int | None = 1000,
    out_dir: str | Path | None = None,
    model: str | None = None,
    data_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    callback: TrainCallback | None = None,
) -> TsneResult:
    """Project the [CLS] vectors of ``split`` under each model; write table, points and figure.
    ``callback`` sees a phase per model's pass over the data (its batches) and the projection."""
    started = time.perf_counter()
    callback = callback or TrainCallback()
    bundle = load_bundle(mask)
    kind = bundle.info.task.kind
    if not get_kind(kind).labels_sequences:
        raise MaskctlError(
            f"{bundle.path} is a {kind} task: the [CLS] t-SNE needs sequence classification",
            "pass a bundle of a sentence (pair) classification task",
        )
    if max_examples is not None and max_examples < 2:
        raise MaskctlError(f"--max-examples {max_examples} is too few", "pass at least 2 (default 1000)")
    dev = resolve_device(device)
    notes: list[str] = []
    ft_source = None
    if finetuned is not None:
        folder = Path(finetuned)
        ft_source, more = open_finetuned(bundle, folder)
        notes += more

    net, source, task = load_base(bundle.info, model, dev, where=bundle.path)
    check_head(net, bundle)
    tokenizer = load_tokenizer(source, **task.kind.tokenizer_kwargs)
    record = bundle.info.training
    features = record.features(task, split, tokenizer, data_dir, limit=max_examples)
    loader = make_loader(features, task.kind.collate(tokenizer), batch_size or record.eval_batch_size)
    labels = np.array([item["labels"] for item in features.items])

    def scored(net: torch.nn.Module, name: str) -> np.ndarray:
        with phase(callback, f"[CLS] vectors, {name}", len(loader), "batches") as advance:
            return cls_vectors(net, loader, dev, advance)

    vectors = {"pretrained": scored(net, "pretrained")}
    net.load_state_dict(bundle.head, strict=False)
    apply_masks(net, bundle.masks)
    vectors["masked"] = scored(net, "masked")
    if ft_source is not None:
        state = {k: v for k, v in net.state_dict().items() if v.is_floating_point()}
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        net.load_state_dict(finetuned_state(ft_source, task, list(state), shapes, dev, Path(finetuned)), strict=False)
        vectors["finetuned"] = scored(net, "finetuned")
    del net

    rows, points = [], []
    for name, matrix in vectors.items():
        with phase(callback, f"t-SNE, {name}"):
            xy = project(matrix, seed)
        rows.append({"model": name, "examples": len(matrix), "dim": matrix.shape[1], **silhouettes(matrix, xy, labels)})
        points += [
            {"model": name, "index": i, "label": task.labels[int(label)], "x": float(x), "y": float(y)}
            for i, ((x, y), label) in enumerate(zip(xy, labels))
        ]
    result = TsneResult(
        task=task.name, split=split, labels=task.labels, rows=rows, points=points, vectors=vectors, notes=notes
    )
    if out_dir is not None:
        meta = {
            "figure": "Zhao et al. 2020, Fig. 4: t-SNE of the last layer's [CLS] vectors",
            "mask": str(bundle.path),
            "finetuned": str(finetuned) if finetuned else None,
            "base_model": source.spec,
            "task": task.name,
            "split": split,
            "examples": len(labels),
            "tsne": "sklearn TSNE, 2 components, PCA init, perplexity min(30, (n-1)/3), "
            f"random_state {seed}; silhouette_cls: cosine on the raw vectors",
            "notes": notes,
            "device": str(dev),
            "maskctl": __version__,
            "seconds": round(time.perf_counter() - started, 2),
        }
        result.files = write_tsne(result, out_dir, meta)
    return result


def write_tsne(result: TsneResult, out_dir: str | Path, meta: dict[str, Any]) -> dict[str, Path]:
    """``tsne.*`` (one row per model), ``tsne_points.*`` and ``tsne.png`` under ``out_dir``."""
    out_dir = Path(out_dir)
    files = {}
    for name, rows, title in (
        ("tsne", result.rows, f"[CLS] t-SNE on {result.task} ({result.split})"),
        ("tsne_points", result.points, "t-SNE coordinates per example"),
    ):
        files.update({f"{name}.{kind}": path for kind, path in write_table(rows, out_dir, name, meta, title).items()})
    files["tsne.png"] = save_figure(tsne_figure(result), out_dir / "tsne.png")
    return files


def tsne_figure(result: TsneResult) -> Any:
    """One scatter per model, coloured by gold label."""
    models = [row["model"] for row in result.rows]
    fig = new_figure(4.0 * len(models), 4.4)
    axes = np.atleast_1d(fig.subplots(1, len(models)))
    colours = {label: f"C{i % 10}" for i, label in enumerate(result.labels)}
    for ax, row in zip(axes, result.rows):
        mine = [p for p in result.points if p["model"] == row["model"]]
        for label in result.labels:
            xs = [p["x"] for p in mine if p["label"] == label]
            ys = [p["y"] for p in mine if p["label"] == label]
            ax.scatter(xs, ys, s=6, alpha=0.7, color=colours[label], label=label)
        score = row["silhouette_cls"]
        ax.set_title(row["model"] + ("" if score is None else f" (silhouette {score:.2f})"))
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 6), fontsize="small", markerscale=2)
    fig.suptitle(f"[CLS] t-SNE on {result.task} {result.split} (Zhao et al. 2020, Fig. 4)")
    return fig
