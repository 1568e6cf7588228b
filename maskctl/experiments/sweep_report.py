"""A sweep's results table (csv, md, json) and, for one numeric key, its figure.

Written after every point, so that an interrupted sweep leaves a table of what it finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maskctl.experiments.sweep_points import EXTEND_FACTOR, EXTENDABLE, PointResult, format_value, pick_best, result_row

TABLE_NAME = "sweep"


def write_sweep_table(
    points: list[PointResult],
    grid: Mapping[str, Any],
    folder: Path,
    metric: str,
    settings: Mapping[str, Any],
    extend: int,
) -> dict[str, Path]:
    """The table of every point so far (the best marked, edge points and scheduler stops noted)."""
    from maskctl.experiments.report import write_table
    from maskctl.version import __version__

    best = pick_best(points)
    rows = [{**result_row(p, list(grid)), "added": "edge" if p.added else "", "best": p is best} for p in points]
    if any(p.stopped_at is not None for p in points):  # a column only where a scheduler stopped a point
        for row, p in zip(rows, points):
            row["stopped_at_eval"] = p.stopped_at
    meta = {
        "grid": dict(grid),
        "metric": metric,
        "best": best.label,
        "sweep_extend": extend,
        "extension_rule": f"one key of {list(EXTENDABLE)}: x{EXTEND_FACTOR:g} above / "
        f"/{EXTEND_FACTOR:g} below the edge while the edge is strictly best",
        "settings": {k: v for k, v in settings.items() if k not in grid},
        "maskctl_version": __version__,
    }
    return write_table(rows, folder, TABLE_NAME, meta=meta, title=f"Sweep over {', '.join(grid)} (dev {metric})")


def write_sweep_figure(
    points: list[PointResult], grid: Mapping[str, Any], best: PointResult, folder: Path, metric: str, args: Any
) -> Path | None:
    """Dev score against the swept value when one numeric key is swept (log-x for lr-like keys)."""
    if len(grid) != 1:
        return None
    from maskctl.experiments.report import new_figure, save_figure

    key = next(iter(grid))
    drawn = sorted(
        (p.point[key], p.score, p)
        for p in points
        if isinstance(p.point.get(key), (int, float)) and not isinstance(p.point[key], bool)
    )
    if len(drawn) < 2:
        return None
    xs, ys = [d[0] for d in drawn], [d[1] for d in drawn]
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(xs, ys, marker="o", color="C0", label="every point")
    added = [(x, y) for x, y, p in drawn if p.added]
    if added:
        ax.scatter(*zip(*added), s=80, facecolors="none", edgecolors="C1", zorder=3, label="added at an edge")
    ax.scatter(
        [best.point[key]],
        [best.score],
        marker="*",
        s=220,
        color="C3",
        zorder=4,
        label=f"best {key}={format_value(best.point[key])}",
    )
    if key in EXTENDABLE or (min(xs) > 0 and max(xs) / min(xs) >= 20):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(f"{Path(str(args.task)).stem} on {Path(str(args.model or 'minilm')).name}: sweep over {key}")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, folder / f"{TABLE_NAME}.png")
