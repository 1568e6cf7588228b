"""The last confusing messages a newcomer met (issue 37): each user mistake is one line with its
fix and exit code 2, and what a terminal of 80 columns shows keeps its words whole."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from maskctl.cli import app
from tests.cli.inprocess import run_in_process
from tests.cli.test_cli import assert_one_line_error
from tests.cli.test_help import COMMANDS as EVERY_COMMAND
from tests.conftest import write_task

COMMANDS = [[], ["analyze"], *EVERY_COMMAND]  # the groups too
BORDERS = re.compile("[╭╮╰╯│─┃━┏┓┗┛┡┩┳┻╇┼]")


def _words(text: str) -> list[str]:
    return BORDERS.sub(" ", text).split()


def _help(command: list[str], columns: int) -> str:
    result = CliRunner().invoke(app, [*command, "-h"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "maskctl")
def test_help_at_80_columns_breaks_no_word(command):
    """Every word of the 80-column help is a word of the 250-column one: nothing folded mid-word
    (a choice list, a path, a default), nothing cut with an ellipsis, no <bool> on a flag."""
    narrow = _help(command, 80)
    whole = set(_words(_help(command, 250)))
    assert [w for w in _words(narrow) if w not in whole] == []
    assert "…" not in narrow and "<bool>" not in narrow
    assert all(len(line) <= 80 for line in narrow.splitlines())


def test_help_paragraphs_wrap_at_the_terminal_not_at_the_source():
    text = _help([], 80)
    assert "size against entropy, and with --plot draw how its" in text  # one paragraph, rewrapped
    serve = " ".join(_help(["serve"], 250).split())
    assert "mixed-task batches, hot add/remove of bundles" in serve


def test_train_help_is_grouped_into_panels():
    text = _help(["train"], 80)
    panels = re.findall(r"╭─ (.+?) ─", text)
    assert panels == [
        "Arguments",
        "Options",
        "Data: task, model, encoding",
        "Output and evaluation",
        "Optimisation",
        "Mask",
        "Your own data files (instead of --task)",
        "Devices, distributed runs, checkpoints",
        "Recipes and sweeps",
        "Sweeps on Ray (--sweep-backend ray)",
    ]
    assert "masks/<task>-<model>.bundle" in text  # the --output default, whole
    kind = " ".join(_help(["train"], 250).split())
    assert "--kind KIND" in kind and "One of: multiple-choice, sequence-classification, token-tagging." in kind


def test_the_tasks_table_drops_a_column_rather_than_break_a_word():
    narrow = run_in_process("tasks", env={"COLUMNS": "80"}).stdout
    assert "sequence-classification" in narrow and "hub:fancyzhx/ag_news," in narrow
    assert "labels" not in narrow and all(len(line) <= 80 for line in narrow.splitlines())
    wide = run_in_process("tasks", env={"COLUMNS": "120"}).stdout
    assert "labels" in wide and "13 registered tasks" in wide


def test_an_eval_table_keeps_its_title_on_one_line(tiny_bert, keyword_task, tmp_path):
    out = "masks/a-longer-bundle-name.bundle"  # as the README's: a path relative to the current folder
    run_in_process(
        "train", "--model", tiny_bert, "--task", keyword_task, "--output", out, "--max-steps", "1", cwd=tmp_path
    )
    done = run_in_process("eval", out, env={"COLUMNS": "80"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"keywords: {out}" in done.stdout  # the title, unbroken (it wrapped in three before)


def test_rerunning_an_interrupted_run_names_its_checkpoint_and_how_to_resume(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "kw.bundle"
    ckpt = tmp_path / "kw.bundle.ckpt"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"position": {"epoch": 0, "step": 7, "in_epoch": 7}}))
    args = ["train", "--model", tiny_bert, "--task", keyword_task, "--output", out, "--max-steps", "1"]
    assert_one_line_error(
        run_in_process(*args),
        f"{ckpt} holds the checkpoint of an interrupted run at step 7",
        f"maskctl train --resume {ckpt}",
        "--overwrite",
    )
    assert not out.exists() and ckpt.is_dir()
    assert run_in_process(*args, "--overwrite").returncode == 0  # starts over, as asked
    assert out.is_file() and not ckpt.exists()  # and the old checkpoint goes with the finished run


def test_an_ensemble_of_two_tasks_names_the_tasks(tiny_bert, keyword_task, tmp_path):
    card = write_task(tmp_path / "other")
    card.write_text(
        card.read_text()
        .replace("name: keywords", "name: topics")
        .replace("labels: [pos, neg, food, sport]", "labels: [pos, neg, food, sport, other]")
    )
    first, second = tmp_path / "kw.bundle", tmp_path / "topics.bundle"
    for task, out in ((keyword_task, first), (card, second)):
        run_in_process("train", "--model", tiny_bert, "--task", task, "--output", out, "--max-steps", "1")
    assert_one_line_error(
        run_in_process("ensemble", first, second), f"{second} is a bundle of task 'topics', {first} of task 'keywords'"
    )


@pytest.fixture(scope="module")
def keyword_bundle(tiny_bert, keyword_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("newcomer") / "kw.bundle"
    run_in_process("train", "--model", tiny_bert, "--task", keyword_task, "--output", out, "--max-steps", "1")
    return out


@pytest.mark.parametrize("content", ["", "\n  \n"], ids=["empty", "blank lines"])
def test_predict_on_an_input_with_no_line_is_one_error_and_writes_nothing(keyword_bundle, tmp_path, content):
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    answers = tmp_path / "answers.jsonl"
    done = run_in_process("predict", keyword_bundle, "--input", empty, "--output", answers)
    assert_one_line_error(done, f"input file {empty} holds no input line", '{"text"')
    assert not answers.exists() and done.stdout == ""


def test_predict_on_empty_stdin_is_one_error(keyword_bundle, monkeypatch):
    import io
    import sys

    from maskctl.errors import MaskctlError
    from maskctl.serving.inputs import PredictionInputs
    from maskctl.serving.model import MaskedModel
    from maskctl.serving.stream import write_predictions

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    model = MaskedModel.from_bundles([keyword_bundle])
    with pytest.raises(MaskctlError, match="stdin holds no input line"):
        write_predictions(model, PredictionInputs.read("-"), stream=io.StringIO())


def test_eval_on_a_file_without_the_named_column_points_at_the_option(keyword_bundle, tmp_path):
    scored = tmp_path / "scored.csv"
    scored.write_text("text,label\nalpha beta,pos\n")
    done = run_in_process("eval", keyword_bundle, "--file", scored, "--text-column", "body")
    assert_one_line_error(done, "no column 'body' for the text (columns: text, label)", "pass --text-column")


def test_a_file_that_is_no_bundle_is_described_not_its_readers_exception(tmp_path):
    text = tmp_path / "notes.bundle"
    text.write_text("these are my notes, not a bundle\n" * 3)
    done = run_in_process("inspect", text)
    assert_one_line_error(done, "is not a readable bundle: it is not a safetensors file")
    assert "MemoryError" not in done.stderr and "Error:" not in done.stderr.replace("error:", "")
    cut = tmp_path / "cut.bundle"
    shutil.copy(text, cut)
    cut.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')  # a header cut short
    assert_one_line_error(run_in_process("eval", cut), "not a safetensors file, or it was cut short")
