"""A sweep's points: what one point is, how it trains, how a finished one is read back.

A point is a mapping of swept keys to values (``{"lr": 3e-05}``) over the sweep's settings. It
trains into its own folder, beside a ``result.json`` that records its training settings and dev
metrics; a later sweep with the same settings reads it back instead of training it again, which
is what makes sweeps (and the analyses built on them, on either backend) resumable. Which point
wins and which is added beyond an edge of the grid is decided here too, from the points alone
(rules: ``maskctl.experiments.sweep``'s docstring).
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.errors import MaskctlError, TrainingInterrupted
from maskctl.io import atomic_write_text
from maskctl.training.callbacks import TrainCallback

RESULT_FILE = "result.json"
EXTEND_FACTOR = 3.0
EXTENDABLE = ("lr", "threshold")  # positive, unbounded above: a geometric step makes sense


@dataclass
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
    stopped_at: int | None = None  # the dev evaluation after which a scheduler (ASHA) stopped it; no output

    @property
    def score(self) -> float:
        value = self.metrics.get("score")
        return float(value) if value is not None else math.nan


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


def _train(args: Any, callback: TrainCallback | None) -> Any:
    """The one place that trains (tests replace it to score points as a function of lr)."""
    from maskctl.training.trainer import train

    return train(args, callback=callback)


def point_args(settings: Mapping[str, Any], point: Mapping[str, Any], output: Path) -> Any:
    """The ``TrainArgs`` of one point: ``settings`` changed by ``point``, written to ``output``."""
    from maskctl.train_settings import TrainArgs

    return TrainArgs(
        **{**settings, **point, "output": str(output), "overwrite": True, "resume": None, "checkpoint_dir": None}
    )


def stored_point(
    settings: Mapping[str, Any],
    point: Mapping[str, Any],
    output: Path,
    replace_other: bool = False,
    accept_stopped: bool = False,
) -> PointResult | None:
    """The point read back from its ``result.json`` when that records the same training settings
    and its output is there (or it was stopped early and ``accept_stopped``); else None, with a
    stale ``result.json`` removed. Other settings there are an error unless ``replace_other``."""
    output = Path(output)
    record = json.loads(json.dumps(point_args(settings, point, output).record()))
    result_file = output.parent / RESULT_FILE
    if not result_file.is_file():
        return None
    stored = json.loads(result_file.read_text(encoding="utf-8"))
    stopped = stored.get("stopped_at")
    if stored.get("training") == record and (output.exists() if stopped is None else accept_stopped):
        return PointResult(
            point=dict(point),
            label=point_label(point),
            output=output,
            metrics=stored["metrics"],
            sparsity=stored.get("sparsity", {}),
            wall_seconds=stored.get("wall_seconds", 0.0),
            reused=True,
            stopped_at=stopped,
        )
    if stored.get("training") != record and not replace_other:
        other = sorted(k for k in record if stored.get("training", {}).get(k) != record[k])
        raise MaskctlError(
            f"{output.parent} holds a run with other settings ({', '.join(other)})",
            "pass --overwrite to retrain it, or choose another output folder",
        )
    result_file.unlink()
    return None


def record_point(settings: Mapping[str, Any], done: PointResult) -> None:
    """Write a point's ``result.json`` (what ``stored_point`` reads back)."""
    record = json.loads(json.dumps(point_args(settings, done.point, done.output).record()))
    payload = {
        "point": done.point,
        "training": record,
        "metrics": done.metrics,
        "sparsity": done.sparsity,
        "wall_seconds": done.wall_seconds,
        "output": str(done.output) if done.stopped_at is None else None,
    }
    if done.stopped_at is not None:
        payload["stopped_at"] = done.stopped_at
    atomic_write_text(done.output.parent / RESULT_FILE, json.dumps(payload, indent=2, default=str) + "\n")


def train_point(
    settings: Mapping[str, Any],
    point: Mapping[str, Any],
    output: Path,
    callback: TrainCallback | None = None,
    replace_other: bool = False,
) -> PointResult:
    """Train ``settings`` changed by ``point`` into ``output`` and record it in ``result.json``.

    A matching ``result.json`` (same training settings, output present) is read back instead.
    """
    output = Path(output)
    label = point_label(point)
    reused = stored_point(settings, point, output, replace_other)
    if reused is not None:
        return reused
    args = point_args(settings, point, output)
    try:
        result = _train(args, callback)
    except TrainingInterrupted as exc:  # the trainer's checkpoint hint names one run, not this sweep
        shutil.rmtree(exc.checkpoint, ignore_errors=True)
        raise MaskctlError(
            f"interrupted while training {label}",
            "rerun the same command: finished points are read back, not retrained",
        ) from None
    finally:
        gc.collect()  # one run's model at a time
    done = PointResult(
        point=dict(point),
        label=label,
        output=output,
        metrics=dict(result.metrics),
        sparsity=dict(result.sparsity),
        wall_seconds=float(result.wall_seconds),
    )
    record_point(settings, done)
    return done


def grid_points(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def pick_best(points: list[PointResult]) -> PointResult:
    """Highest dev score; ties go to the point run first; NaN scores and points stopped early
    (no output) never win."""
    finished = [p for p in points if p.stopped_at is None] or points
    finite = [p for p in finished if math.isfinite(p.score)] or finished
    return max(finite, key=lambda p: p.score)


def edge_extension(grid: Mapping[str, list[Any]], points: list[PointResult]) -> float | None:
    """The value to add beyond the grid's edge, or None (the rule: ``maskctl.experiments.sweep``'s docstring)."""
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


def result_row(result: PointResult, keys: list[str]) -> dict[str, Any]:
    """The table columns of one point: its values, dev score, every dev metric, timing, output."""
    row: dict[str, Any] = {"point": result.label}
    row.update({key: result.point.get(key) for key in keys})
    row["dev_score"] = result.score
    row.update({f"dev_{name}": value for name, value in result.metrics.items() if name != "score"})
    row["final_sparsity"] = result.sparsity.get("final")
    row["wall_s"] = round(result.wall_seconds, 1)
    row["reused"] = result.reused
    row["output"] = str(result.output) if result.stopped_at is None else ""  # stopped early: no output
    return row
