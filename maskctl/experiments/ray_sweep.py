"""Ray Tune as the executor of a sweep's points (``maskctl train --sweep ... --sweep-backend ray``).

``maskctl.experiments.sweep`` decides what a point is, reads finished points back and writes the
table; this module only runs the points left as Tune trials and says how each ended. A trial
calls the function the sweep hands over (``sweep_points.train_point``, the very function the local
backend calls, which calls the library's ``train()``), so a point's bundle and ``result.json``
land in the sweep folder where, and as, the local backend writes them. On a cluster that folder
must be shared storage mounted at the same path on every node (NFS, a KubeRay volume); Tune's own
records (trial logs, error tracebacks, its experiment state) go to ``<sweep folder>/tune/``.

Every dev evaluation is reported to Tune (``tune.report`` from a ``TrainCallback``), so a
trial's ``training_iteration`` counts its evaluations and ``--scheduler asha`` (Tune's ASHA on the
dev score, higher is better, keeping the top half at evaluations 1, 2, 4, 8, ...) compares points
at the same evaluation and stops those that trail; such a trial ends without an output.

Resources: ``--cpus-per-trial`` CPUs per trial, which are also the trial's torch threads (torch
would otherwise start one thread per core of the node in every trial, and trials sharing a node
would oversubscribe it), and ``--gpus-per-trial`` GPUs; Ray runs as many trials at once as the
cluster has room for. A trial that fails leaves the others to finish.

Ray is imported only here, and this module only when the Ray backend is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskctl import ray_cluster
from maskctl.training.callbacks import TrainCallback

TUNE_FOLDER = "tune"  # Tune's storage path inside the sweep folder
REDUCTION = 2  # ASHA keeps the top half at each rung


def require_ray() -> Any:
    """``ray`` with Tune, or one clear error naming the extra."""
    return ray_cluster.require_ray("--sweep-backend ray", "ray.tune", "ray[tune]")


@dataclass
class TrialOutcome:
    """How one trial ended: ``error`` (one line) when it failed, else its last report."""

    config: dict[str, Any]
    error: str | None = None
    last: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # the trial's folder (its error.txt, Tune's logs)


class TuneReport(TrainCallback):
    """Reports each dev evaluation of a trial to Tune (the scheduler decides on ``score``)."""

    def on_evaluate(
        self, step: int, epoch: float, metrics: dict[str, float], best: bool, sparsity: float | None = None
    ) -> None:
        from ray import tune

        values: dict[str, Any] = {
            f"dev_{k}": v if isinstance(v, int) else float(v) for k, v in metrics.items() if isinstance(v, (int, float))
        }
        values.update(score=float(metrics.get("score", math.nan)), step=step, epoch=float(epoch))
        if sparsity is not None:
            values["mask_sparsity"] = float(sparsity)
        tune.report(values)


def _trial(
    config: dict[str, Any],
    train: Callable[[dict[str, Any], TrainCallback], Any],
    runs: dict[str, dict[str, Any]],
    threads: int,
    cwd: str,
) -> None:
    """One trial: ``train(run, TuneReport())`` for the run it is named after, with the trial's
    torch threads, from the driver's working directory (relative paths in the settings mean
    what they meant there)."""
    import torch

    if os.path.isdir(cwd):
        os.chdir(cwd)
    torch.set_num_threads(threads)
    train(runs[config["name"]], TuneReport())


def run_trials(
    train: Callable[[dict[str, Any], TrainCallback], Any],
    runs: list[dict[str, Any]],
    names: list[str],
    *,
    address: str | None,
    cpus: int,
    gpus: float,
    scheduler: str,
    storage: Path,
    name: str,
    on_end: Callable[[TrialOutcome], None],
) -> list[TrialOutcome]:
    """Run ``train(run, callback)`` for each of ``runs`` as a Tune trial named by ``names``;
    ``on_end`` hears of each trial as it ends (on this process); returns the outcomes in order."""
    require_ray()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    ray_cluster.connect(address)
    by_name = dict(zip(names, runs))

    def trial_name(trial: Any) -> str:
        return trial.config["name"]

    class Ended(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            on_end(TrialOutcome(by_name[trial.config["name"]], last=dict(trial.last_result or {}), path=trial.path))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            on_end(TrialOutcome(by_name[trial.config["name"]], error=_trial_error(trial), path=trial.path))

    trainable = tune.with_resources(
        tune.with_parameters(_trial, train=train, runs=by_name, threads=cpus, cwd=os.getcwd()),
        {"cpu": cpus, "gpu": gpus},
    )
    asha = None
    if scheduler == "asha":  # evaluations are the time axis; max_t far beyond any run's count
        asha = ASHAScheduler(
            time_attr="training_iteration", max_t=1_000_000, grace_period=1, reduction_factor=REDUCTION
        )
    tuner = tune.Tuner(
        trainable,
        param_space={"name": tune.grid_search(list(by_name))},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=asha,
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(Path(storage).resolve()),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[Ended()],
        ),
    )
    with _quiet_tune():
        grid = tuner.fit()
    outcomes = {}
    for result in grid:
        n = result.config["name"]
        outcomes[n] = TrialOutcome(
            by_name[n],
            error=_one_line(result.error) if result.error else None,
            last=dict(result.metrics or {}),
            path=str(result.path),
        )
    return [outcomes[n] for n in names if n in outcomes]


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    """Tune's console report off while it runs (the sweep prints its own lines): the legacy
    reporter, which ``verbose=0`` silences (the newer one prints its banner whatever the
    verbosity), and its log lines (a failed trial's traceback is in its folder, and the sweep
    names the trial and its error in one line)."""
    logger = logging.getLogger("ray.tune")
    level, before = logger.level, os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def _one_line(error: BaseException | str) -> str:
    """A trial's failure as one line: the last line of its traceback, a ``MaskctlError`` without
    its class name (``--mask-blocks top:9: K must be ...``), any other error with it."""
    cause = error if isinstance(error, str) else getattr(error, "cause", None) or error
    lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
    if not lines:
        return type(cause).__name__
    return re.sub(r"^maskctl\.errors\.\w+: ", "", lines[-1])


def _trial_error(trial: Any) -> str:
    """The one line that says why a trial failed, read from its error file."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text(encoding="utf-8") if path else ""
    except OSError:
        text = ""
    return _one_line(text) if text.strip() else "the trial failed"
