"""``maskctl train`` writing to a log file or CI (not a terminal) prints plain lines: each phase as
it starts, the mean loss every --log-every steps, each evaluation; ``maskctl inspect --plot``
draws the stored curve, never over an existing file unless --overwrite, and says when a bundle
predates loss curves. In process through typer's CliRunner, whose output is not a terminal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maskctl.cli import app
from tests.cli.test_sweep_cli import assert_one_line_error, cli
from tests.conftest import PNG

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"


@pytest.fixture(scope="module")
def logged(tiny_bert, keyword_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("logged") / "kw.bundle"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--model",
            str(tiny_bert),
            "--task",
            str(keyword_task),
            "--output",
            str(out),
            "--max-steps",
            "6",
            "--eval-every",
            "3",
            "--log-every",
            "2",
            "--batch-size",
            "16",
            "--lr",
            "1e-2",
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output, out


def test_train_prints_log_lines_when_not_on_a_terminal(logged):
    output, out = logged
    lines = output.splitlines()
    for phase in (
        "reading train ...",
        "tokenising train (240 examples) ...",
        "reading dev ...",
        "tokenising dev (60 examples) ...",
        "loading model ...",
        "evaluating dev (1 batch) ...",
    ):
        assert phase in lines, output
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["2/6", "4/6", "6/6"], output
    assert all(re.search(r"epoch [\d.]+: loss \d+\.\d{4}, lr 0\.01, [\d.]+ ex/s$", line) for line in steps), steps
    evals = [line for line in lines if "dev score" in line]
    assert len(evals) == 2 and "(step 3)" in evals[0] and "(step 6)" in evals[1], output
    assert all("accuracy 0." in line and "n 60" in line and "mask sparsity" in line for line in evals)
    assert evals[0].endswith("(best so far)")
    assert "\x1b[" not in output  # plain text, no terminal control codes
    assert f"wrote {out}" in output.replace("\n", "")


def test_inspect_plot_writes_a_png_and_never_overwrites_it(capsys, logged, tmp_path):
    import matplotlib.image

    _, out = logged
    png = tmp_path / "curve.png"
    first = CliRunner().invoke(app, ["inspect", str(out), "--plot", str(png)])
    assert first.exit_code == 0, first.output
    assert "training: 6 loss points to step 6, 2 dev evaluations" in first.output
    assert png.read_bytes().startswith(PNG)
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > 400 and height > 300
    before = png.read_bytes()
    assert_one_line_error(cli(capsys, "inspect", out, "--plot", png), "already exists", "--overwrite")
    assert png.read_bytes() == before
    replaced = CliRunner().invoke(app, ["inspect", str(out), "--plot", str(png), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output


def test_inspect_plot_of_a_bundle_that_predates_loss_curves_is_one_error(capsys, tmp_path):
    old = tmp_path / "old.bundle"
    shutil.copy(FIXTURES / "keywords-format2.bundle", old)
    assert_one_line_error(cli(capsys, "inspect", old, "--plot", tmp_path / "c.png"), "predates loss curves")
    assert not (tmp_path / "c.png").exists()


def test_report_to_a_tracker_that_is_not_installed_is_one_error(capsys, tmp_path, monkeypatch):
    from maskctl.training import tracking

    monkeypatch.setattr(tracking, "installed", lambda module: False)
    assert_one_line_error(
        cli(capsys, "train", "--model", tmp_path / "no-model", "--report-to", "tensorboard"),
        "--report-to tensorboard needs the tensorboard package",
        "pip install tensorboard",
    )
