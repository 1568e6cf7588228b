"""Progress of long work (issue 37, row h): on a terminal a rich bar with its rate and time left;
in a log a plain line at least every 30 s whatever --log-every says, driven here by a fake clock."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from maskctl.cli import console as consoles
from maskctl.cli import sweep_progress
from maskctl.cli.console import LogLines, RichProgress, train_progress
from maskctl.cli.progress import HEARTBEAT_S, Heartbeat, PlainLines, duration, pace, work
from maskctl.cli.sweep_progress import SweepProgress
from maskctl.experiments.sweep_points import PointResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plain(monkeypatch):
    """The shared console as a log file sees it: not a terminal, recorded."""
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    monkeypatch.setattr(consoles, "console", console)
    monkeypatch.setattr(sweep_progress, "console", console)
    return console


def lines(console: Console) -> list[str]:
    return console.file.getvalue().splitlines()


def test_a_long_training_in_a_log_prints_a_line_at_least_every_30_seconds(plain):
    clock = Clock()
    progress = LogLines(Heartbeat(clock=clock))
    progress.on_start(
        {
            "method": "mask",
            "task": "bbc-news",
            "model": "minilm",
            "device": "cpu",
            "train_examples": 1557,
            "dev_examples": 334,
            "epochs": 1,
            "total_steps": 44,
            "lr": 1e-3,
            "global_batch": 32,
            "processes": 1,
            "trainable": 10,
            "log_every": 50,
        }
    )
    for step in range(1, 45):  # 44 steps of 4 s, --log-every 50: only the last step is a record
        clock.now += 4.0
        progress.on_step(step, 44, 0.5, 8.0)
        if step == 44:
            progress.on_log({"step": 44, "total": 44, "epoch": 1.0, "loss": 0.5, "lr": 1e-3, "examples_per_s": 8.0})
    progress.close()
    steps = [line for line in lines(plain) if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["8/44:", "16/44:", "24/44:", "32/44:", "40/44:", "44/44"]
    assert steps[0] == "step 8/44: loss 0.5000, 8.0 ex/s (4 s/step, ~2 min left)"  # a heartbeat every 32 s of steps
    assert steps[-1] == "step 44/44 epoch 1: loss 0.5000, lr 0.001, 8.0 ex/s"  # the record, no heartbeat beside it


def test_a_phase_in_a_log_says_how_far_it_got(plain):
    clock = Clock()
    lines_ = PlainLines(plain, "evaluating test", 20, "batches", Heartbeat(clock=clock))
    for _ in range(20):
        clock.now += 3.0
        lines_.advance(1)
    assert lines(plain) == [
        "evaluating test (20 batches) ...",
        "evaluating test: 10/20 batches (3 s/batch, ~30 s left)",
        "evaluating test: 20/20 batches (3 s/batch, ~0 s left)",
    ]


def test_a_heartbeat_is_due_once_per_interval():
    clock = Clock()
    beat = Heartbeat(clock=clock)
    clock.now += HEARTBEAT_S - 1
    assert not beat.due()
    clock.now += 1
    assert beat.due() and not beat.due()


def test_rates_and_times_read_well():
    assert pace(10, 20, 5.0, "batches") == "2 batches/s, ~5 s left"
    assert pace(0, 20, 5.0, "batches") == ""
    assert pace(3, None, 30.0, "steps") == "10 s/step"
    assert [duration(s) for s in (42, 600, 7300)] == ["42 s", "10 min", "2 h 01 min"]


def test_a_terminal_gets_bars_with_rate_and_time_left(monkeypatch):
    terminal = Console(file=io.StringIO(), width=100, force_terminal=True)
    monkeypatch.setattr(consoles, "console", terminal)
    progress = train_progress()
    assert isinstance(progress, RichProgress)
    columns = [type(c).__name__ for c in progress.progress.columns]
    assert {"BarColumn", "RateColumn", "TimeRemainingColumn"} <= set(columns)
    progress.close()
    with work(terminal, "evaluating test", 4, "batches") as advance:
        advance(4)
    assert "evaluating test" in terminal.file.getvalue()


def test_a_log_gets_plain_lines_and_no_control_codes(plain):
    assert isinstance(train_progress(), LogLines)
    with work(plain, "evaluating dev", 3, "batches") as advance:
        advance(3)
    assert lines(plain) == ["evaluating dev (3 batches) ..."] and "\x1b[" not in plain.file.getvalue()


def test_a_sweep_in_a_log_says_the_time_left_for_the_points_to_train(plain):
    sweep = SweepProgress()
    for index, (seconds, reused) in enumerate(((0, True), (120, False), (60, False)), start=1):
        sweep.point_start(f"lr={index}", index, 4)
        sweep.point_end(
            PointResult(
                point={"lr": index},
                label=f"lr={index}",
                output=None,
                metrics={"score": 0.5},
                sparsity={},
                wall_seconds=seconds,
                reused=reused,
            ),
            index,
            4,
        )
    sweep.close()
    ends = [line for line in lines(plain) if "dev score" in line]
    assert ends[0].endswith("(read back from an earlier run)")  # nothing trained yet: no estimate
    assert ends[1].endswith("~4 min left for 2 more") and ends[2].endswith("~2 min left for 1 more")
