"""Write a table of results (an analysis, a sweep) as CSV, Markdown and JSON, and its PNG figure.

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


def write_table(rows: Sequence[dict[str, Any]], out_dir: str | Path, name: str,
                meta: dict[str, Any] | None = None, title: str | None = None) -> dict[str, Path]:
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
