"""Hyper-parameter sweeps: train one run per grid point and keep the best on the dev metric.

The paper tunes the learning rate per task on {1e-5, 3e-5, 5e-5, 7e-5, 9e-5} and extends the
grid "when the best is at the edge" (Zhao et al. 2020, §4). ``maskctl train --sweep``, a
recipe's ``sweep:`` mapping and the analyses all share this module, so grids, resumption and
the choice of the best run behave the same everywhere.

Backends (``SweepSettings``): ``local`` (the default) trains the points one after another in this
process; ``ray`` runs each point as a Ray Tune trial (``maskctl.experiments.ray_sweep``, imported
only then; needs ``maskctl[ray]``). Both call the same ``train_point``, write the same folders and
table, and read finished points back the same way; only the scheduling differs.

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
import functools
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl.choices import RAY_ADDRESS_HELP
from maskctl.errors import MaskctlError
from maskctl.experiments.recipes import check_grid
from maskctl.experiments.sweep_points import (
    PointResult,
    edge_extension,
    folder_name,
    format_value,
    grid_points,
    pick_best,
    point_label,
    record_point,
    stored_point,
    train_point,
)
from maskctl.experiments.sweep_report import write_sweep_figure, write_sweep_table
from maskctl.io import atomic_dir, atomic_path, refuse_existing
from maskctl.schema import check_fields, flag, setting
from maskctl.training.callbacks import TrainCallback

DEFAULT_EXTEND = 3
BACKENDS = ("local", "ray")
SCHEDULERS = ("none", "asha")
RAY_PANEL = "Sweeps on Ray (--sweep-backend ray)"


@dataclass
class SweepSettings:
    """Where a sweep's points train (``maskctl train --sweep-backend``). The local backend
    needs none of the other fields; they shape the Ray Tune trials."""

    sweep_backend: str = setting(
        "local",
        "Where a sweep's points train: local (one after another in this process) "
        "or ray (each a Ray Tune trial; needs maskctl's ray extra).",
        choices=BACKENDS,
        panel=RAY_PANEL,
    )
    ray_address: str | None = setting(None, RAY_ADDRESS_HELP, panel=RAY_PANEL)
    cpus_per_trial: int = setting(
        1, "CPUs Ray reserves for each trial, and the trial's torch threads.", min=1, panel=RAY_PANEL
    )
    gpus_per_trial: float = setting(
        0.0,
        "GPUs Ray reserves for each trial (a fraction shares one GPU); a trial given one trains on it.",
        min=0.0,
        panel=RAY_PANEL,
    )
    scheduler: str = setting(
        "none",
        "none: every point trains to its end; asha: Ray Tune's ASHA stops a point whose "
        "dev score trails the others' at the same evaluation (evaluate often: "
        "--eval-every).",
        choices=SCHEDULERS,
        panel=RAY_PANEL,
    )

    def check(self, swept: bool = True) -> SweepSettings:
        """Bounds and choices; the Ray options only with ``--sweep-backend ray`` and a sweep."""
        check_fields(self)
        defaults = SweepSettings.__dataclass_fields__
        given = [
            name
            for name in ("ray_address", "cpus_per_trial", "gpus_per_trial", "scheduler")
            if getattr(self, name) != defaults[name].default
        ]
        if self.sweep_backend == "local" and given:
            raise MaskctlError(
                f"{flag(given[0])} applies to --sweep-backend ray", "add --sweep-backend ray, or drop it"
            )
        if self.sweep_backend != "local" and not swept:
            raise MaskctlError(
                f"--sweep-backend {self.sweep_backend} runs a sweep, and there is none",
                "give --sweep key=v1,v2 (or a recipe with a sweep:), or drop --sweep-backend",
            )
        return self


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
class SweepResult:
    grid: dict[str, list[Any]]
    points: list[PointResult]
    best: PointResult
    output: Path  # where the best point's output was copied
    folder: Path
    table: dict[str, Path]
    figure: Path | None
    backend: str = "local"


def sweep_folder(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".bundle") + ".sweep")


def run_sweep(
    settings: Mapping[str, Any],
    grid: Mapping[str, Any],
    output: str | Path | None = None,
    extend: int | None = DEFAULT_EXTEND,
    overwrite: bool | None = None,
    callback: SweepCallback | None = None,
    folder: str | Path | None = None,
    backend: SweepSettings | None = None,
) -> SweepResult:
    """Train every point of ``grid`` over ``settings``, extend at an edge, copy the best to ``output``.

    ``backend`` says where the points train (default: here, one after another). On Ray the
    grid's points run as concurrent trials, then each added edge point as one more; a point
    that fails leaves the others to finish, and the sweep then stops with an error naming it
    (its finished points are in the table and read back by a rerun)."""
    from maskctl.train_settings import TrainArgs

    backend = (backend or SweepSettings()).check()
    points_runner = RayPoints(backend) if backend.sweep_backend == "ray" else LocalPoints()
    grid = check_grid(grid)
    if not grid:
        raise MaskctlError("the sweep has no keys", "give --sweep key=v1,v2 or a recipe with a sweep: mapping")
    if settings.get("resume"):
        raise MaskctlError(
            "--resume continues one run, not a sweep",
            "rerun the same sweep command instead: finished points are read back",
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every process would train and record every point
        raise MaskctlError(
            "a sweep runs in one process, not under accelerate launch / torchrun",
            "run the sweep without a launcher, or launch single runs with a fixed lr",
        )
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
    sweep = _Sweep(
        settings=settings,
        grid=grid,
        output=output,
        folder=folder,
        extend=extend,
        overwrite=overwrite,
        callback=callback or SweepCallback(),
        metric=metric_name(base),
        planned=grid_points(grid),
    )
    points = sweep.points
    points_runner.run(sweep, list(sweep.planned), added=False, name="grid")
    for _ in range(extend):
        new = edge_extension(grid, points)
        if new is None:
            break
        key = next(iter(grid))
        sweep.callback.note(
            f"best {key} {format_value(pick_best(points).point[key])} is at the edge of the grid: "
            f"adding {key}={format_value(new)}"
        )
        sweep.planned.append({key: new})
        points_runner.run(sweep, [{key: new}], added=True, name=f"edge-{len(sweep.planned)}")
    best = pick_best(points)
    if best.stopped_at is not None:
        raise MaskctlError("every point of the sweep was stopped early by the scheduler", "rerun with --scheduler none")
    _copy_output(best.output, output)
    table = write_sweep_table(points, grid, folder, sweep.metric, settings, extend)
    figure = write_sweep_figure(points, grid, best, folder, sweep.metric, base)
    return SweepResult(
        grid=grid,
        points=points,
        best=best,
        output=output,
        folder=folder,
        table=table,
        figure=figure,
        backend=backend.sweep_backend,
    )


@dataclass
class _Sweep:
    """What a sweep's backend needs of the sweep: where each point goes, and what is done so far."""

    settings: Mapping[str, Any]
    grid: dict[str, list[Any]]
    output: Path
    folder: Path
    extend: int
    overwrite: bool
    callback: SweepCallback
    metric: str
    planned: list[dict[str, Any]]
    points: list[PointResult] = field(default_factory=list)

    def place(self, point: Mapping[str, Any]) -> Path:
        return self.folder / folder_name(point_label(point)) / self.output.name

    def write_table(self) -> None:
        write_sweep_table(self.points, self.grid, self.folder, self.metric, self.settings, self.extend)


class LocalPoints:
    """The ``local`` backend: each point trained here, one after another, the table rewritten after each."""

    def run(self, sweep: _Sweep, batch: list[dict[str, Any]], added: bool, name: str) -> None:
        for point in batch:
            total = max(len(sweep.planned), len(sweep.points) + 1)
            train_callback = sweep.callback.point_start(point_label(point), len(sweep.points) + 1, total)
            done = train_point(sweep.settings, point, sweep.place(point), train_callback, replace_other=sweep.overwrite)
            done.added = added
            sweep.points.append(done)
            sweep.callback.point_end(done, len(sweep.points), total)
            sweep.write_table()


class RayPoints:
    """The ``ray`` backend: a batch of points as concurrent Ray Tune trials (``ray_sweep``); a
    failed trial leaves the others to finish, then stops the sweep with an error naming it."""

    def __init__(self, backend: SweepSettings) -> None:
        from maskctl.experiments import ray_sweep

        ray_sweep.require_ray()  # before anything else: one line naming the extra
        self.backend = backend

    def run(self, sweep: _Sweep, batch: list[dict[str, Any]], added: bool, name: str) -> None:
        from maskctl.experiments import ray_sweep

        done, failed = _points_on_ray(
            sweep.settings,
            batch,
            [sweep.place(p) for p in batch],
            self.backend,
            sweep.folder,
            name,
            sweep.callback,
            replace_other=sweep.overwrite,
            first_index=len(sweep.points),
            total=max(len(sweep.planned), len(sweep.points) + len(batch)),
        )
        for result in done:
            result.added = added
            sweep.points.append(result)
        if sweep.points:
            sweep.write_table()
        if failed:
            first = next(iter(failed))
            raise MaskctlError(
                f"{len(failed)} of {len(batch)} sweep points failed ({', '.join(failed)}); {first}: {failed[first]}",
                f"fix the cause and rerun the same command (finished points are read back); "
                f"tracebacks in {sweep.folder / ray_sweep.TUNE_FOLDER}",
            )


def _trained_in_trial(settings: Mapping[str, Any], run: dict[str, Any], callback: TrainCallback) -> None:
    """What a Ray Tune trial runs (``ray_sweep``): the local backend's ``train_point``."""
    train_point(settings, run["point"], Path(run["output"]), callback=callback, replace_other=True)


def _points_on_ray(
    settings: Mapping[str, Any],
    batch: list[dict[str, Any]],
    outputs: list[Path],
    backend: SweepSettings,
    folder: Path,
    name: str,
    callback: SweepCallback,
    replace_other: bool,
    first_index: int,
    total: int,
) -> tuple[list[PointResult], dict[str, str]]:
    """Train ``batch`` as Ray Tune trials (``ray_sweep``); points already finished are read back
    without a trial. Returns the points in the batch's order (trained, read back, or stopped
    early by the scheduler) and ``{label: one-line error}`` for the trials that failed."""
    from maskctl.experiments import ray_sweep

    found: dict[str, PointResult] = {}
    failed: dict[str, str] = {}
    todo = []
    for point, place in zip(batch, outputs):
        done = stored_point(settings, point, place, replace_other, accept_stopped=backend.scheduler != "none")
        if done is None:
            todo.append({"point": dict(point), "output": str(Path(place).resolve())})
        else:
            found[done.label] = done
            callback.point_end(done, first_index + len(found), total)

    def ended(outcome: Any) -> None:
        label = point_label(outcome.config["point"])
        if label in found or label in failed:
            return
        if outcome.error is not None:
            failed[label] = outcome.error
            callback.note(f"{label} failed: {outcome.error} (traceback in {outcome.path})")
            return
        found[label] = _trial_result(settings, outcome.config, outcome.last)
        callback.point_end(found[label], first_index + len(found), total)

    if todo:
        storage = folder / ray_sweep.TUNE_FOLDER
        callback.note(
            f"{len(todo)} point{'s' * (len(todo) != 1)} as Ray Tune trials, {backend.cpus_per_trial} CPU"
            f"{'s' * (backend.cpus_per_trial != 1)}{f' and {backend.gpus_per_trial:g} GPU' if backend.gpus_per_trial else ''}"
            f" each (Tune's records: {storage})"
        )
        for outcome in ray_sweep.run_trials(
            functools.partial(_trained_in_trial, dict(settings)),
            todo,
            [folder_name(point_label(run["point"])) for run in todo],
            address=backend.ray_address,
            cpus=backend.cpus_per_trial,
            gpus=backend.gpus_per_trial,
            scheduler=backend.scheduler,
            storage=storage,
            name=name,
            on_end=ended,
        ):
            ended(outcome)  # any the driver-side hook did not hear of
    labels = [point_label(p) for p in batch]
    return [found[label] for label in labels if label in found], {
        label: failed[label] for label in labels if label in failed
    }


def _trial_result(settings: Mapping[str, Any], run: dict[str, Any], last: Mapping[str, Any]) -> PointResult:
    """A trial that ended without error: its point read back, or, without a ``result.json``
    (the scheduler stopped it), recorded as stopped with its last reported dev metrics so that a
    rerun with the same scheduler reads it back."""
    place = Path(run["output"])
    done = stored_point(settings, run["point"], place, replace_other=True, accept_stopped=True)
    if done is not None:
        done.reused = False
        return done
    metrics = {k.removeprefix("dev_"): v for k, v in last.items() if k.startswith("dev_")}
    stopped = PointResult(
        point=dict(run["point"]),
        label=point_label(run["point"]),
        output=place,
        metrics=metrics,
        sparsity={"final": last["mask_sparsity"]} if "mask_sparsity" in last else {},
        wall_seconds=float(last.get("time_total_s", 0.0)),
        stopped_at=int(last.get("training_iteration", 0)),
    )
    place.parent.mkdir(parents=True, exist_ok=True)
    record_point(settings, stopped)
    return stopped


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
                filecmp.cmp(output / f, point / f, shallow=False) for f in files
            ):
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
