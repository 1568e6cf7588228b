"""What a training run reports while it runs, kept out of the loop itself.

* ``LossCurve``: the training loss of every optimizer step, stored with the output
  (``metrics.curve``) beside the dev history, so ``maskctl inspect --plot`` can draw a finished
  run. A run longer than ``MAX_POINTS`` steps is averaged into buckets of ``every`` steps, so a
  bundle stays small however long the run; the curve's state travels in checkpoints, so a
  resumed run writes the same bytes as an uninterrupted one.
* ``Reporter``: turns each step and evaluation into the callback's hooks (progress bars, log
  lines) and, every ``--log-every`` steps, one record of the mean loss since the previous one,
  the learning rate and the speed, which also goes to accelerate's trackers (``--report-to``).

Trackers write under ``<output>.runs/``. A missing tracker package is a user error raised by
``check_tracker`` before any model or data is loaded.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from maskctl.errors import MissingPackage
from maskctl.training.callbacks import TrainCallback

MAX_POINTS = 2000  # loss points a bundle keeps at most
PROJECT = "maskctl"  # the trackers' project (W&B) or folder under <output>.runs/ (TensorBoard)
# The modules accelerate's tracker for each --report-to can use (TensorBoard: either writer).
MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_tracker(report_to: str) -> None:
    """Refuse ``--report-to`` naming a tracker whose package is missing (one line, the fix)."""
    if report_to != "none" and not any(installed(m) for m in MODULES[report_to]):
        raise MissingPackage(f"--report-to {report_to}", report_to)


def runs_dir(output: Path) -> Path:
    return output.with_name(output.name + ".runs")


def accelerator_kwargs(report_to: str, output: Path) -> dict[str, Any]:
    """``log_with`` / ``project_dir`` for ``Accelerator`` (nothing when not tracking)."""
    if report_to == "none":
        return {}
    return {"log_with": report_to, "project_dir": str(runs_dir(output))}


def start_trackers(accelerator, report_to: str, config: dict[str, Any], output: Path) -> None:
    """``init_trackers`` with the run's record as the config (TensorBoard's hparams take only
    scalars and strings, so anything else is stored as its JSON)."""
    if report_to == "none":
        return
    flat = {k: v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in config.items()}
    accelerator.init_trackers(PROJECT, config=flat, init_kwargs={"wandb": {"name": output.name}})


def _rounded(value: float) -> float:
    return float(f"{value:.6g}")  # six digits: a bundle stays small, a plot cannot tell


class LossCurve:
    """The per-step training loss, averaged into buckets of ``every`` steps (1 up to
    ``MAX_POINTS`` steps); each point is (last step of its bucket, mean loss in it)."""

    def __init__(self, total: int) -> None:
        self.every = max(1, math.ceil(total / MAX_POINTS))
        self.steps: list[int] = []
        self.loss: list[float] = []
        self._pending = [0.0, 0, 0]  # loss sum, steps, last step of the open bucket

    def add(self, step: int, loss: float) -> None:
        self._pending = [self._pending[0] + loss, self._pending[1] + 1, step]
        if step % self.every == 0:
            self.steps.append(step)
            self.loss.append(_rounded(self._pending[0] / self._pending[1]))
            self._pending = [0.0, 0, 0]

    def to_dict(self) -> dict[str, Any]:
        """What the output stores: an open bucket (a run stopped early) counts as a point."""
        total, n, last = self._pending
        tail = ([last], [_rounded(total / n)]) if n else ([], [])
        return {"every": self.every, "step": self.steps + tail[0], "loss": self.loss + tail[1]}

    def state(self) -> dict[str, Any]:
        """For checkpoints: the points and the open bucket (JSON keeps floats exactly)."""
        return {"every": self.every, "step": self.steps, "loss": self.loss, "pending": self._pending}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:  # a checkpoint from before loss curves: the curve starts at the resumed step
            self.every, self.steps, self.loss = state["every"], list(state["step"]), list(state["loss"])
            self._pending = list(state["pending"])


class Reporter:
    """The loop's facts, once each: the curve, the callback's hooks and the trackers' records."""

    def __init__(self, accelerator, callback: TrainCallback, log_every: int, total: int, steps_per_epoch: int) -> None:
        self.accelerator, self.callback = accelerator, callback
        self.log_every, self.total, self.steps_per_epoch = log_every, total, max(steps_per_epoch, 1)
        self.curve = LossCurve(total)
        self._since = [0.0, 0, 0, 0.0]  # loss sum, steps, examples, seconds since the last record

    def step(self, step: int, loss: float, examples: int, seconds: float, lr: float) -> None:
        """After optimizer step ``step``: ``loss`` its mean over micro-batches (and processes),
        ``examples``/``seconds`` what it took. The curve first: a callback may interrupt the run,
        and the checkpoint then written must hold this step's point."""
        self.curve.add(step, loss)
        self.callback.on_step(step, self.total, loss, examples / max(seconds, 1e-9))
        since = self._since
        self._since = [since[0] + loss, since[1] + 1, since[2] + examples, since[3] + seconds]
        if step % self.log_every == 0 or step == self.total:
            total_loss, steps, seen, spent = self._since
            record = {
                "step": step,
                "total": self.total,
                "epoch": round(step / self.steps_per_epoch, 2),
                "loss": total_loss / steps,
                "lr": lr,
                "examples_per_s": seen / max(spent, 1e-9),
            }
            self._since = [0.0, 0, 0, 0.0]
            self.callback.on_log(record)
            self.accelerator.log(
                {
                    "train/loss": record["loss"],
                    "train/lr": lr,
                    "train/epoch": record["epoch"],
                    "train/examples_per_s": record["examples_per_s"],
                },
                step=step,
            )

    def evaluate(self, step: int, epoch: float, metrics: dict[str, float], best: bool, sparsity: float | None) -> None:
        self.callback.on_evaluate(step, epoch, metrics, best, sparsity=sparsity)
        values = {f"dev/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        if sparsity is not None:
            values["dev/mask_sparsity"] = sparsity
        self.accelerator.log(values, step=step)
