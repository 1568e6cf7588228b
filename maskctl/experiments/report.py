"""Write a table of results (an analysis, a sweep) as CSV, Markdown and JSON, and its PNG figure;
draw a training run's loss curve and dev history (``maskctl inspect --plot``).

A neutral module: ``sweep`` and ``analysis`` both write through it, so neither imports the other
for it.

Every file is written atomically, so an interrupted analysis never leaves half a table over a
previous one. Figures use matplotlib's object API (a bare ``Figure`` renders with Agg), leaving
the caller's pyplot state alone.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskctl.errors import MaskctlError
from maskctl.io import atomic_path, atomic_write_text


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (floats with 4 decimals)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    name: str,
    meta: dict[str, Any] | None = None,
    title: str | None = None,
) -> dict[str, Path]:
    """Write ``<name>.csv``, ``<name>.md`` and ``<name>.json`` under ``out_dir``.

    ``meta`` (settings, versions, timings) goes into the JSON beside the rows and, as a short
    list, under the Markdown table, so a table always says how it was made.
    """
    out_dir = Path(out_dir)
    columns = list(rows[0].keys()) if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {"csv": out_dir / f"{name}.csv", "md": out_dir / f"{name}.md", "json": out_dir / f"{name}.json"}
    atomic_write_text(paths["csv"], buffer.getvalue())
    text = f"# {title}\n\n" if title else ""
    text += markdown_table(rows, columns)
    if meta:
        text += "\n" + "".join(f"- {key}: {json.dumps(value, default=str)}\n" for key, value in meta.items())
    atomic_write_text(paths["md"], text)
    atomic_write_text(paths["json"], json.dumps({"meta": meta or {}, "rows": list(rows)}, indent=2, default=str) + "\n")
    return paths


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib ``Figure`` as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def new_figure(width: float = 6.0, height: float = 4.0) -> Any:
    """A pyplot-free ``Figure`` with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_training_curve(
    curve: Any, path: str | Path, *, source: str | Path, title: str = "", metric: str = "score", overwrite: bool = False
) -> Path:
    """Draw a run's ``bundle.meta.TrainingCurve``: the training loss against the optimizer step
    above, the dev score at each evaluation below on the same step axis, the evaluation the
    output kept marked on both. ``curve`` None (``source`` written before loss curves were
    stored) and an existing ``path`` without ``overwrite`` are refused before drawing."""
    path = Path(path)
    if curve is None:
        raise MaskctlError(
            f"{source} predates loss curves (written before maskctl stored them)",
            "train it again with this version to get a curve",
        )
    if path.exists() and not overwrite:
        raise MaskctlError(f"{path} already exists", "choose another file or pass --overwrite to replace it")
    fig = new_figure(7.0, 5.5)
    loss_ax, dev_ax = fig.subplots(2, 1, sharex=True)
    loss_ax.plot(curve.steps, curve.loss, color="C0", linewidth=1)
    loss_ax.set_ylabel("training loss" + (f"\n(mean of {curve.every} steps)" if curve.every > 1 else ""))
    loss_ax.set_title(title)
    steps = [entry["step"] for entry in curve.evaluations]
    scores = [entry["dev"]["score"] for entry in curve.evaluations]
    dev_ax.plot(steps, scores, marker="o", color="C1", label="dev evaluation")
    if curve.kept_step is not None:
        for ax in (loss_ax, dev_ax):
            ax.axvline(curve.kept_step, color="C2", linestyle="--", linewidth=1)
        kept = [s for step, s in zip(steps, scores) if step == curve.kept_step]
        dev_ax.scatter(
            [curve.kept_step] * len(kept),
            kept,
            marker="*",
            s=160,
            color="C2",
            zorder=3,
            label=f"kept (step {curve.kept_step})",
        )
    dev_ax.set_xlabel("optimizer step")
    dev_ax.set_ylabel(f"dev {metric}")
    dev_ax.legend(loc="best")
    for ax in (loss_ax, dev_ax):
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
