"""Hyper-parameter sweeps: train one run per grid point and keep the best on the dev metric.

The paper tunes the learning rate per task on {1e-5, 3e-5, 5e-5, 7e-5, 9e-5} and extends the
grid "when the best is at the edge" (Zhao et al. 2020, §4). ``maskctl train --sweep``, a
recipe's ``sweep:`` mapping and the analyses all share this module, so grids, resumption and
the choice of the best run behave the same everywhere.

Layout, for ``--output masks/sst2.bundle``::

    masks/sst2.sweep/lr=3e-05/sst2.bundle     one run per point, result.json beside it
    masks/sst2.sweep/sweep.{csv,md,json,png}  the results table (and figure)
    masks/sst2.bundle                          a copy of the best point's output

Resumption: a point whose ``result.json`` records the same training settings is read back, not
retrained, so an interrupted or finished sweep is continued by rerunning the same command. A
point folder holding other settings is an error unless ``--overwrite``. The final output is only
written at the end, atomically; an existing one is refused before any work unless ``--overwrite``
or it is this sweep's own earlier copy of one of its points.

Edge extension (``sweep_extend``, default 3, 0 disables): with a single key out of
``EXTENDABLE`` (lr, threshold), when the best point is at the top or bottom edge of the grid and
strictly better than every other point, one point is added beyond that edge, ×3 above or ÷3
below (9e-5 → 2.7e-4 → 8.1e-4 → 2.43e-3: masking wants far larger learning rates than
finetuning), and the check repeats, up to ``sweep_extend`` added points. A flat grid (ties at
the edge) is not extended: it says nothing about the direction.
"""

from __future__ import annotations

import filecmp
import gc
import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.errors import MaskctlError, TrainingInterrupted
from maskctl.io import atomic_dir, atomic_path, atomic_write_text, refuse_existing
from maskctl.experiments.recipes import MAX_KEYS, UNSWEEPABLE, check_grid, parse_sweep, resolve_grid  # noqa: F401 - re-exported
from maskctl.training.callbacks import TrainCallback

DEFAULT_EXTEND = 3
EXTEND_FACTOR = 3.0
EXTENDABLE = ("lr", "threshold")  # positive, unbounded above: a geometric step makes sense
RESULT_FILE = "result.json"
TABLE_NAME = "sweep"


class SweepCallback:
    """Progress hooks of a sweep or an analysis; the library itself prints nothing."""

    def point_start(self, label: str, index: int, total: int) -> TrainCallback | None:
        """A point starts training (or is read back); may return the run's ``TrainCallback``."""
        return None

    def point_end(self, result: PointResult, index: int, total: int) -> None:
        """A point finished (``result.reused`` when it was read back from its folder)."""

    def note(self, text: str) -> None:
        """A decision worth a line, e.g. an edge extension."""


@dataclass
class PointResult:
    """One trained (or reused) run: its point, dev metrics and where its output lies."""

    point: dict[str, Any]
    label: str
    output: Path
    metrics: dict[str, float]
    sparsity: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    reused: bool = False
    added: bool = False  # added by edge extension

    @property
    def score(self) -> float:
        value = self.metrics.get("score")
        return float(value) if value is not None else math.nan


@dataclass
class SweepResult:
    grid: dict[str, list[Any]]
    points: list[PointResult]
    best: PointResult
    output: Path  # where the best point's output was copied
    folder: Path
    table: dict[str, Path]
    figure: Path | None


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "default" if value is None else str(value)


def point_label(point: Mapping[str, Any]) -> str:
    """``lr=3e-05`` or ``lr=3e-05,seed=1``: the table's name for a point."""
    return ",".join(f"{key}={format_value(value)}" for key, value in point.items()) or "run"


def folder_name(label: str) -> str:
    """A point's label as one safe path component (``mask_blocks=top:2`` -> ``mask_blocks=top_2``)."""
    return re.sub(r"[^A-Za-z0-9._=,+%-]", "_", label)


def sweep_folder(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".bundle") + ".sweep")


def _train(args: Any, callback: TrainCallback | None) -> Any:
    """The one place that trains (tests replace it to score points as a function of lr)."""
    from maskctl.training.trainer import train

    return train(args, callback=callback)


def train_point(settings: Mapping[str, Any], point: Mapping[str, Any], output: Path,
                callback: TrainCallback | None = None, replace_other: bool = False) -> PointResult:
    """Train ``settings`` changed by ``point`` into ``output`` and record it in ``result.json``.

    A matching ``result.json`` (same training settings, output present) is read back instead.
    """
    from maskctl.training.trainer import TrainArgs

    output = Path(output)
    args = TrainArgs(**{**settings, **point, "output": str(output), "overwrite": True,
                        "resume": None, "checkpoint_dir": None})
    record = json.loads(json.dumps(args.record()))
    result_file = output.parent / RESULT_FILE
    label = point_label(point)
    if result_file.is_file():
        stored = json.loads(result_file.read_text(encoding="utf-8"))
        if stored.get("training") == record and output.exists():
            return PointResult(point=dict(point), label=label, output=output, metrics=stored["metrics"],
                               sparsity=stored.get("sparsity", {}), wall_seconds=stored.get("wall_seconds", 0.0),
                               reused=True)
        if stored.get("training") != record and not replace_other:
            other = sorted(k for k in record if stored.get("training", {}).get(k) != record[k])
            raise MaskctlError(f"{output.parent} holds a run with other settings ({', '.join(other)})",
                               "pass --overwrite to retrain it, or choose another output folder")
        result_file.unlink()
    try:
        result = _train(args, callback)
    except TrainingInterrupted as exc:  # the trainer's checkpoint hint names one run, not this sweep
        shutil.rmtree(exc.checkpoint, ignore_errors=True)
        raise MaskctlError(f"interrupted while training {label}",
                           "rerun the same command: finished points are read back, not retrained") from None
    finally:
        gc.collect()  # one run's model at a time
    metrics = dict(result.metrics)
    done = PointResult(point=dict(point), label=label, output=output, metrics=metrics,
                       sparsity=dict(result.sparsity), wall_seconds=float(result.wall_seconds))
    atomic_write_text(result_file, json.dumps({"point": done.point, "training": record, "metrics": metrics,
                                               "sparsity": done.sparsity, "wall_seconds": done.wall_seconds,
                                               "output": str(output)}, indent=2, default=str) + "\n")
    return done


def grid_points(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def pick_best(points: list[PointResult]) -> PointResult:
    """Highest dev score; ties go to the point run first; NaN scores never win."""
    finite = [p for p in points if math.isfinite(p.score)] or points
    return max(finite, key=lambda p: p.score)


def edge_extension(grid: Mapping[str, list[Any]], points: list[PointResult]) -> float | None:
    """The value to add beyond the grid's edge, or None (see the module docstring for the rule)."""
    if len(grid) != 1 or next(iter(grid)) not in EXTENDABLE:
        return None
    key = next(iter(grid))
    values = [p.point.get(key) for p in points]
    if len(set(values)) < 2 or not all(isinstance(v, float) and v > 0 for v in values):
        return None
    best = pick_best(points)
    if any(p.score >= best.score for p in points if p is not best):
        return None  # a tie: no direction to extend in
    low, high, value = min(values), max(values), best.point[key]
    if value == high:
        new = float(f"{value * EXTEND_FACTOR:.6g}")
    elif value == low:
        new = float(f"{value / EXTEND_FACTOR:.6g}")
    else:
        return None
    return None if new in values else new


def run_sweep(settings: Mapping[str, Any], grid: Mapping[str, Any], output: str | Path | None = None,
              extend: int | None = DEFAULT_EXTEND, overwrite: bool | None = None,
              callback: SweepCallback | None = None, folder: str | Path | None = None) -> SweepResult:
    """Train every point of ``grid`` over ``settings``, extend at an edge, copy the best to ``output``."""
    from maskctl.training.trainer import TrainArgs

    grid = check_grid(grid)
    if not grid:
        raise MaskctlError("the sweep has no keys", "give --sweep key=v1,v2 or a recipe with a sweep: mapping")
    if settings.get("resume"):
        raise MaskctlError("--resume continues one run, not a sweep",
                           "rerun the same sweep command instead: finished points are read back")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every process would train and record every point
        raise MaskctlError("a sweep runs in one process, not under accelerate launch / torchrun",
                           "run the sweep without a launcher, or launch single runs with a fixed lr")
    base = TrainArgs(**settings)
    overwrite = base.overwrite if overwrite is None else overwrite
    extend = DEFAULT_EXTEND if extend is None else extend
    output = Path(output or base.output or _default_output(base))
    if base.method == "mask":
        from maskctl.bundle.format import check_bundle_output

        check_bundle_output(output)
    folder = Path(folder) if folder else sweep_folder(output)
    if not _copied_from(folder, output):  # a rerun of this sweep may replace its own copy of the best
        refuse_existing(output, overwrite)
    callback = callback or SweepCallback()
    metric = metric_name(base)
    planned = grid_points(grid)
    points: list[PointResult] = []

    def run(point: dict[str, Any], added: bool) -> None:
        label = point_label(point)
        total = max(len(planned), len(points) + 1)
        train_callback = callback.point_start(label, len(points) + 1, total)
        done = train_point(settings, point, folder / folder_name(label) / output.name, train_callback,
                           replace_other=overwrite)
        done.added = added
        points.append(done)
        callback.point_end(done, len(points), total)
        _write_table(points, grid, folder, metric, settings, extend)

    for point in planned:
        run(point, added=False)
    for _ in range(extend):
        new = edge_extension(grid, points)
        if new is None:
            break
        key = next(iter(grid))
        callback.note(f"best {key} {format_value(pick_best(points).point[key])} is at the edge of the grid: "
                      f"adding {key}={format_value(new)}")
        planned.append({key: new})
        run({key: new}, added=True)
    best = pick_best(points)
    _copy_output(best.output, output)
    table = _write_table(points, grid, folder, metric, settings, extend)
    figure = _write_figure(points, grid, best, folder, metric, base)
    return SweepResult(grid=grid, points=points, best=best, output=output, folder=folder, table=table, figure=figure)


def _default_output(args: Any) -> Path:
    from maskctl.models import resolve_model
    from maskctl.training.trainer import default_output

    task = args.load_task()
    return default_output(args.with_task_defaults(task.card.defaults), task, resolve_model(args.model))


def metric_name(args: Any) -> str:
    """The name of the run's task metric (``accuracy``, ``seqeval-f1``, ...)."""
    return args.load_task().card.metric


def _copied_from(folder: Path, output: Path) -> bool:
    """Whether ``output`` is this sweep's earlier copy of one of its points (same bytes), so
    that rerunning the same command, which reads finished points back, is not refused."""
    if not output.exists() or not folder.is_dir():
        return False
    for point in folder.glob(f"*/{output.name}"):
        if output.is_file() and point.is_file() and filecmp.cmp(output, point, shallow=False):
            return True
        if output.is_dir() and point.is_dir():
            files = sorted(p.relative_to(output) for p in output.rglob("*") if p.is_file())
            if files == sorted(p.relative_to(point) for p in point.rglob("*") if p.is_file()) and all(
                    filecmp.cmp(output / f, point / f, shallow=False) for f in files):
                return True
    return False


def _copy_output(source: Path, target: Path) -> None:
    """Copy the best run's bundle (file) or model folder over ``target`` atomically."""
    if source.resolve() == target.resolve():
        return
    if source.is_dir():
        with atomic_dir(target) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
    else:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)


def result_row(result: PointResult, keys: list[str]) -> dict[str, Any]:
    """The table columns of one point: its values, dev score, every dev metric, timing, output."""
    row: dict[str, Any] = {"point": result.label}
    row.update({key: result.point.get(key) for key in keys})
    row["dev_score"] = result.score
    row.update({f"dev_{name}": value for name, value in result.metrics.items() if name != "score"})
    row["final_sparsity"] = result.sparsity.get("final")
    row["wall_s"] = round(result.wall_seconds, 1)
    row["reused"] = result.reused
    row["output"] = str(result.output)
    return row


def _write_table(points: list[PointResult], grid: Mapping[str, Any], folder: Path, metric: str,
                 settings: Mapping[str, Any], extend: int) -> dict[str, Path]:
    from maskctl import __version__
    from maskctl.experiments.report import write_table

    best = pick_best(points)
    rows = [{**result_row(p, list(grid)), "added": "edge" if p.added else "", "best": p is best} for p in points]
    meta = {"grid": dict(grid), "metric": metric, "best": best.label, "sweep_extend": extend,
            "extension_rule": f"one key of {list(EXTENDABLE)}: x{EXTEND_FACTOR:g} above / "
                              f"/{EXTEND_FACTOR:g} below the edge while the edge is strictly best",
            "settings": {k: v for k, v in settings.items() if k not in grid}, "maskctl_version": __version__}
    return write_table(rows, folder, TABLE_NAME, meta=meta, title=f"Sweep over {', '.join(grid)} (dev {metric})")


def _write_figure(points: list[PointResult], grid: Mapping[str, Any], best: PointResult, folder: Path,
                  metric: str, args: Any) -> Path | None:
    """Dev score against the swept value when one numeric key is swept (log-x for lr-like keys)."""
    if len(grid) != 1:
        return None
    from maskctl.experiments.report import new_figure, save_figure

    key = next(iter(grid))
    drawn = sorted((p.point[key], p.score, p) for p in points
                   if isinstance(p.point.get(key), (int, float)) and not isinstance(p.point[key], bool))
    if len(drawn) < 2:
        return None
    xs, ys = [d[0] for d in drawn], [d[1] for d in drawn]
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(xs, ys, marker="o", color="C0", label="every point")
    added = [(x, y) for x, y, p in drawn if p.added]
    if added:
        ax.scatter(*zip(*added), s=80, facecolors="none", edgecolors="C1", zorder=3, label="added at an edge")
    ax.scatter([best.point[key]], [best.score], marker="*", s=220, color="C3", zorder=4,
               label=f"best {key}={format_value(best.point[key])}")
    if key in EXTENDABLE or (min(xs) > 0 and max(xs) / min(xs) >= 20):
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(f"{Path(str(args.task)).stem} on {Path(str(args.model or 'minilm')).name}: sweep over {key}")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, folder / f"{TABLE_NAME}.png")
