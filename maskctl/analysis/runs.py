"""What the retraining analyses share: settings from a recipe, one run per setting and seed.

``maskctl analyze sparsity`` and ``maskctl analyze layers`` each train many masks that differ
in one or two ``TrainArgs`` fields. They take their settings exactly like ``maskctl train``
(a recipe plus ``key=value`` overrides, and a recipe's ``sweep:`` or ``--sweep``), and run every
setting through ``maskctl.experiments.sweep``, so a run is resumable the same way: each lives in
``<out>/runs/<label>/`` with a ``result.json``, and rerunning the command reads finished runs
back instead of retraining them. With a grid, a run's score is the best point of its sweep.
Only one model is in memory at a time; the bundles stay on disk under ``runs/``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.errors import MaskctlError
from maskctl.experiments.recipes import resolve_grid
from maskctl.experiments.sweep import DEFAULT_EXTEND, SweepCallback, run_sweep
from maskctl.experiments.sweep_points import PointResult, folder_name, point_label, train_point
from maskctl.training.callbacks import TrainCallback

RUNS = "runs"


@dataclass
class Plan:
    """Settings for every run of an analysis, and the per-run grid (empty: one run each)."""

    settings: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    extend: int = DEFAULT_EXTEND


@dataclass
class AnalysisResult:
    rows: list[dict[str, Any]]  # one per run (and seed)
    summary: list[dict[str, Any]]  # mean and sd over seeds
    tables: dict[str, dict[str, Path]]
    figure: Path
    out_dir: Path


def plan(
    recipe: str | None,
    overrides: list[str] | None,
    sweep: list[str] | None,
    sweep_extend: int | None,
    varied: tuple[str, ...],
    analysis: str,
) -> Plan:
    """Resolve the settings like ``maskctl train``; the keys the analysis varies may not be fixed."""
    from maskctl.experiments.recipes import resolve_run

    spec = resolve_run(recipe, overrides or [])
    for key in varied:
        spec.sweep.pop(key, None)
    clash = sorted(spec.fixed & set(varied))
    if clash:
        raise MaskctlError(
            f"{clash[0]} is what `maskctl analyze {analysis}` varies; it cannot be set by an override",
            f"drop {clash[0]}=...; use the analysis' own options (see --help)",
        )
    grid = resolve_grid(spec, sweep)
    clash = sorted(set(grid) & set(varied))
    if clash:
        raise MaskctlError(
            f"--sweep {clash[0]}: `maskctl analyze {analysis}` already varies {clash[0]}", "sweep another key, e.g. lr"
        )
    settings = {k: v for k, v in spec.settings.items() if k not in ("output", "resume", "checkpoint_dir")}
    if settings.get("method", "mask") != "mask":
        raise MaskctlError(
            f"`maskctl analyze {analysis}` studies masks, not --method {settings['method']}",
            "drop method=... or use a masking recipe",
        )
    extend = sweep_extend if sweep_extend is not None else spec.sweep_extend
    return Plan(settings=settings, grid=grid, extend=DEFAULT_EXTEND if extend is None else extend)


def parse_numbers(text: str, what: str, kind: type = float) -> list[Any]:
    """``"1,3,5"`` -> numbers, in the given order, without repeats; a bad item is a one-line error."""
    items = [item.strip() for item in str(text).split(",")]
    try:
        values = [kind(item) for item in items if item]
    except ValueError:
        raise MaskctlError(
            f"{what} {text!r} is not a comma-separated list of {kind.__name__}s",
            f"write e.g. {'1,3,5' if kind is int else '1,5,50'}",
        ) from None
    if not values:
        raise MaskctlError(f"{what} is empty", "give at least one value")
    return list(dict.fromkeys(values))


class _Nested(SweepCallback):
    """Shows an inner sweep's points as ``<run> | <point>`` under the run's own index."""

    def __init__(self, outer: SweepCallback, label: str, index: int, total: int) -> None:
        self.outer, self.label, self.index, self.total = outer, label, index, total

    def point_start(self, label: str, index: int, total: int) -> TrainCallback | None:
        return self.outer.point_start(f"{self.label} | {label}", self.index, self.total)

    def point_end(self, result: PointResult, index: int, total: int) -> None:
        self.outer.point_end(result, self.index, self.total)

    def note(self, text: str) -> None:
        self.outer.note(f"{self.label}: {text}")


def run_all(
    the_plan: Plan, runs: list[dict[str, Any]], out_dir: Path, callback: SweepCallback | None = None
) -> dict[str, PointResult]:
    """Train (or read back) every run: ``runs`` are the ``TrainArgs`` changes of each, by label."""
    callback = callback or SweepCallback()
    results: dict[str, PointResult] = {}
    for index, changes in enumerate(runs, start=1):
        label = point_label(changes)
        folder = Path(out_dir) / RUNS / folder_name(label)
        settings = {**the_plan.settings, **changes}
        if the_plan.grid:
            swept = run_sweep(
                settings,
                the_plan.grid,
                output=folder / "mask.bundle",
                extend=the_plan.extend,
                overwrite=True,
                folder=folder / "sweep",
                callback=_Nested(callback, label, index, len(runs)),
            )
            best = swept.best
            result = PointResult(
                point={**changes, **best.point},
                label=label,
                output=swept.output,
                metrics=best.metrics,
                sparsity=best.sparsity,
                wall_seconds=sum(p.wall_seconds for p in swept.points),
                reused=all(p.reused for p in swept.points),
            )
        else:
            train_callback = callback.point_start(label, index, len(runs))
            result = train_point(the_plan.settings, changes, folder / "mask.bundle", train_callback, replace_other=True)
            callback.point_end(result, index, len(runs))
        results[label] = result
    return results


def run_columns(result: PointResult, grid: Mapping[str, Any]) -> dict[str, Any]:
    """The per-run table columns after the analysis' own: score, metrics, best swept values, where."""
    row: dict[str, Any] = {"dev_score": result.score}
    row.update({f"dev_{k}": v for k, v in result.metrics.items() if k != "score"})
    final = result.sparsity.get("final")
    row["final_sparsity_pct"] = round(100 * final, 3) if final is not None else None
    row.update({f"best_{key}": result.point.get(key) for key in grid})
    row["wall_s"] = round(result.wall_seconds, 1)
    row["reused"] = result.reused
    row["bundle"] = str(result.output)
    return row


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single seed); NaN scores are left out."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def meta(the_plan: Plan, out_dir: Path, metric: str, **extra: Any) -> dict[str, Any]:
    """What every analysis table records about how it was made."""
    from maskctl.version import __version__

    return {
        "metric": metric,
        "runs_folder": str(Path(out_dir) / RUNS),
        "settings": the_plan.settings,
        "sweep": the_plan.grid or None,
        "sweep_extend": the_plan.extend if the_plan.grid else None,
        **extra,
        "maskctl_version": __version__,
    }


def metric_name(settings: Mapping[str, Any]) -> str:
    """The metric of the settings' task (the trainer's default task when none is set)."""
    from maskctl.experiments.sweep import metric_name as card_metric
    from maskctl.train_settings import TrainArgs

    return card_metric(TrainArgs(**{k: v for k, v in settings.items() if k in TrainArgs.__dataclass_fields__}))


def describe(settings: Mapping[str, Any]) -> str:
    """``bbc-news on minilm`` for figure titles."""
    task = Path(str(settings.get("task_name") or settings.get("train_file") or settings.get("task") or "bbc-news")).stem
    return f"{task} on {Path(str(settings.get('model') or 'minilm')).name}"
