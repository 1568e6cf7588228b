"""Help that reads well: every command answers -h, choices show as choices, one --output name
everywhere (old names still accepted), plain --overwrite flags, shell completion on."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from maskctl.cli import app

COMMANDS = [
    ["train"],
    ["eval"],
    ["predict"],
    ["ensemble"],
    ["export"],
    ["inspect"],
    ["size"],
    ["push"],
    ["serve"],
    ["tasks"],
    ["analyze", "diff"],
    ["analyze", "connect"],
    ["analyze", "tsne"],
    ["analyze", "layers"],
    ["analyze", "sparsity"],
]


def help_of(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "-h"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return re.sub(r"\s+", " ", result.output)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_answers_dash_h_without_negative_flag_noise(command):
    text = help_of(*command)
    assert "Usage: maskctl " + " ".join(command) in text
    assert "--no-" not in text  # flags are plain: --overwrite, --strict, --json


def test_choices_show_as_choices():
    assert "<mask|finetune>" in help_of("train") and "<best|last>" in help_of("train")
    assert "auto|cpu|cuda[:N]" in help_of("train") and "auto|cpu|cuda[:N]" in help_of("eval")
    assert "<dev|test|train>" in help_of("eval") and "(validation means dev)" in help_of("eval")
    assert "<label|logit|prob|best>" in help_of("ensemble")
    kinds = help_of("train")  # a list too long for an 80-column help: a name, the choices in the help (issue 37)
    assert "--kind KIND" in kinds and "One of: multiple-choice, sequence-classification, token-tagging." in kinds
    assert "--report-to REPORT_TO" in kinds and "One of: none, tensorboard, wandb." in kinds
    assert "Your own data files" in kinds  # options grouped in panels


@pytest.mark.parametrize(
    "command",
    [
        ["eval"],
        ["predict"],
        ["ensemble"],
        ["export"],
        ["analyze", "diff"],
        ["analyze", "connect"],
        ["analyze", "tsne"],
        ["analyze", "layers"],
        ["analyze", "sparsity"],
    ],
    ids=" ".join,
)
def test_output_is_called_output_everywhere(command):
    assert "--output" in help_of(*command) and "-o" in help_of(*command)


def test_old_option_names_still_work(tmp_path):
    """``analyze ... --out`` (the name before --output) still parses: the run gets as far as the
    missing bundle, not an unknown option."""
    result = CliRunner().invoke(
        app, ["analyze", "diff", str(tmp_path / "a.bundle"), str(tmp_path / "b.bundle"), "--out", str(tmp_path / "out")]
    )
    assert "No such option" not in result.output
    assert "does not exist" in str(result.exception)


def test_shell_completion_is_on():
    text = help_of()
    assert "--install-completion" in text and "--show-completion" in text


def test_building_the_cli_imports_no_model_data_or_server_library():
    """--version, --help and every Tab of completion build all commands' options, and
    ``maskctl tasks --names`` reads package metadata only: none of them may load torch,
    transformers, datasets or the server stack (seconds each time)."""
    import subprocess
    import sys

    heavy = "('torch', 'transformers', 'datasets', 'fastapi', 'uvicorn', 'safetensors')"
    probe = (
        "import sys; from maskctl.cli import app; from maskctl.tasks.registry import task_names; "
        f"assert 'bbc-news' in task_names(); print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_cli_choices_are_the_registries():
    """--kind and --method list what the registries hold (no second list to keep in sync)."""
    from maskctl.tasks.kinds import KINDS
    from maskctl.train_settings import METHODS

    text = help_of("train")
    assert set(KINDS) >= {"sequence-classification", "token-tagging", "multiple-choice"}
    assert f"One of: {', '.join(KINDS)}." in text and f"<{'|'.join(METHODS)}>" in text
