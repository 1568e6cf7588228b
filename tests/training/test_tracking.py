"""A run you can watch: the callback hears every phase (reading, tokenising, evaluating) with its
progress, a record every ``--log-every`` steps and each evaluation with the mask's sparsity; the
output keeps the loss curve (bucketed for long runs) beside the dev history; ``--report-to
tensorboard`` writes event files that read back; a missing tracker package is one user error
before anything loads."""

from __future__ import annotations

import json
import math

import pytest

from maskctl.bundle.format import load_bundle
from maskctl.errors import MissingPackage
from maskctl.train_settings import TrainArgs
from maskctl.training import tracking
from maskctl.training.callbacks import TrainCallback
from maskctl.training.tracking import MAX_POINTS, LossCurve
from maskctl.training.trainer import train
from tests.training.test_trainer_parity import tagging_task  # noqa: F401 - a fixture


def _args(model, task, out, **kw) -> TrainArgs:
    base = dict(
        model=str(model),
        task=str(task),
        output=str(out),
        batch_size=16,
        lr=1e-2,
        seed=2,
        max_steps=6,
        eval_every=3,
        log_every=2,
        eval_batch_size=16,
    )
    return TrainArgs(**{**base, **kw})


class Recorder(TrainCallback):
    def __init__(self) -> None:
        self.events: list[tuple] = []  # phases in order, with what advanced in each
        self.losses: list[float] = []
        self.logs: list[dict] = []
        self.evaluations: list[tuple] = []

    def on_phase(self, name, total, unit) -> None:
        self.events.append([name, total, unit, 0, False])

    def on_advance(self, n) -> None:
        self.events[-1][3] += n

    def on_phase_end(self, name) -> None:
        assert self.events[-1][0] == name
        self.events[-1][4] = True

    def on_step(self, step, total, loss, examples_per_s) -> None:
        self.losses.append(loss)

    def on_log(self, record) -> None:
        self.logs.append(record)

    def on_evaluate(self, step, epoch, metrics, best, sparsity=None) -> None:
        self.evaluations.append((step, metrics["score"], sparsity))


@pytest.fixture(scope="module")
def watched(tiny_bert, keyword_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("watched") / "w.bundle"
    seen = Recorder()
    result = train(_args(tiny_bert, keyword_task, out), callback=seen)
    return seen, result, out


def test_every_phase_reports_its_progress(watched):
    seen, _, _ = watched
    phases = [(name, total, unit, done, ended) for name, total, unit, done, ended in seen.events]
    assert [p[0] for p in phases] == [
        "reading train",
        "tokenising train",
        "reading dev",
        "tokenising dev",
        "loading model",
        "evaluating dev",
        "evaluating dev",
        "evaluating dev (kept state)",
    ]
    assert all(ended for *_, ended in phases)
    assert phases[0][1] is None  # reading: size unknown until read
    assert phases[1][1:4] == (240, "examples", 240) and phases[3][1:4] == (60, "examples", 60)
    assert all(p[1:4] == (4, "batches", 4) for p in phases[5:])  # 60 dev examples in batches of 16


@pytest.mark.parametrize("card", ["keyword_task", "tagging_task"])
def test_tokenising_in_chunks_gives_the_features_of_one_call(card, request, tiny_bert, monkeypatch):
    from maskctl.models import load_tokenizer, resolve_model
    from maskctl.tasks import task as task_module
    from maskctl.tasks.task import get_task

    task = get_task(str(request.getfixturevalue(card)))
    tokenizer = load_tokenizer(resolve_model(str(tiny_bert)), **task.kind.tokenizer_kwargs)
    examples = task.examples("train")
    whole = task.encode(examples, tokenizer, 8)
    monkeypatch.setattr(task_module, "ENCODE_CHUNK", 7)
    done: list[int] = []
    chunked = task.encode(examples, tokenizer, 8, progress=done.append)
    assert whole.truncated and chunked.truncated == whole.truncated  # max_length 8 cuts some
    assert chunked.items == whole.items and chunked.stats == whole.stats and chunked.kept_words == whole.kept_words
    assert sum(done) == len(examples) and len(done) == math.ceil(len(examples) / 7)


def test_log_records_average_the_steps_since_the_last(watched):
    seen, _, _ = watched
    assert [r["step"] for r in seen.logs] == [2, 4, 6] and all(r["total"] == 6 for r in seen.logs)
    for record, pair in zip(seen.logs, (seen.losses[0:2], seen.losses[2:4], seen.losses[4:6])):
        assert record["loss"] == pytest.approx(sum(pair) / 2)
        assert record["lr"] == 1e-2 and record["examples_per_s"] > 0
    assert seen.logs[-1]["epoch"] == round(6 / 15, 2)  # 240 examples / 16 = 15 steps per epoch
    assert [step for step, _, _ in seen.evaluations] == [3, 6]
    assert all(0.0 < sparsity < 1.0 for _, _, sparsity in seen.evaluations)


def test_the_bundle_keeps_the_loss_of_every_step_and_the_dev_history(watched):
    seen, result, out = watched
    bundle = load_bundle(out)
    stored = bundle.meta["metrics"]["curve"]
    assert stored["every"] == 1 and stored["step"] == [1, 2, 3, 4, 5, 6]
    assert stored["loss"] == [float(f"{loss:.6g}") for loss in seen.losses]
    curve = bundle.info.curve
    assert curve.steps == stored["step"] and [e["step"] for e in curve.evaluations] == [3, 6]
    assert curve.kept_step == result.kept["step"]


def test_a_long_run_is_bucketed_to_at_most_max_points_and_resumes_exactly():
    total = 5 * MAX_POINTS + 3
    curve = LossCurve(total)
    assert curve.every == math.ceil(total / MAX_POINTS) == 6
    for step in range(1, 4001):
        curve.add(step, float(step))
    resumed = LossCurve(total)
    resumed.restore(json.loads(json.dumps(curve.state())))  # as a checkpoint carries it
    for c in (curve, resumed):
        for step in range(4001, total + 1):
            c.add(step, float(step))
    assert resumed.to_dict() == curve.to_dict()
    stored = curve.to_dict()
    assert len(stored["step"]) == math.ceil(total / 6) <= MAX_POINTS
    assert stored["step"][:2] == [6, 12] and stored["loss"][0] == 3.5  # mean of steps 1..6
    assert stored["step"][-1] == total and stored["loss"][-1] == float(total)  # the short last bucket
    stopped = LossCurve(total)
    for step in range(1, 9):  # e.g. early stopping inside a bucket: the open bucket still counts
        stopped.add(step, 1.0)
    assert stopped.to_dict()["step"] == [6, 8]


@pytest.mark.slow
def test_finetuning_keeps_its_curve_in_the_folder_record(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "ft"
    train(_args(tiny_bert, keyword_task, out, method="finetune", max_steps=4, lr=1e-4))
    record = json.loads((out / "maskctl_training.json").read_text())
    assert record["metrics"]["curve"]["step"] == [1, 2, 3, 4]
    assert "log_every" not in record["training"] and "report_to" not in record["training"]  # operational


@pytest.mark.slow
def test_tensorboard_events_hold_the_loss_and_dev_scalars(tiny_bert, keyword_task, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb.bundle"
    train(_args(tiny_bert, keyword_task, out, report_to="tensorboard"))
    runs = out.with_name("tb.bundle.runs") / tracking.PROJECT
    events = EventAccumulator(str(runs))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "dev/score", "dev/accuracy", "dev/mask_sparsity"} <= set(tags)
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
    dev = [(e.step, e.value) for e in events.Scalars("dev/score")]
    history = load_bundle(out).meta["metrics"]["history"]
    assert dev == [(h["step"], pytest.approx(h["dev"]["score"])) for h in history]


def test_a_missing_tracker_package_is_refused_before_anything_loads(tmp_path, monkeypatch):
    # Neither the model nor the card exists: the tracker is checked first.
    if not tracking.installed("wandb"):  # not a dependency, never installed for the tests
        with pytest.raises(MissingPackage) as wandb:
            train(TrainArgs(model=str(tmp_path / "no-model"), task=str(tmp_path / "no-card.yaml"), report_to="wandb"))
        assert wandb.value.fix == "pip install wandb"
    monkeypatch.setattr(tracking, "installed", lambda module: False)
    with pytest.raises(MissingPackage, match="--report-to tensorboard needs the tensorboard package"):
        train(TrainArgs(model=str(tmp_path / "no-model"), task=str(tmp_path / "no-card.yaml"), report_to="tensorboard"))
