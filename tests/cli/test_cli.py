"""The command line end to end, as a user runs it: in process through ``run`` (a fresh
``python -m maskctl`` emulated, see ``inprocess.py``), and a real subprocess through ``run_real``
for what only a process shows (``python -m``, the console script, an interpreter's traceback) and
a cheap smoke run per command family (root, tasks, train; size in ``test_size_cli.py``; every
README line, tests/test_readme.py, is a real process too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.inprocess import run_in_process

MASKCTL = [sys.executable, "-m", "maskctl"]


def _checked(proc: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    """``maskctl ARGS`` in this process, answered as a subprocess would be."""
    return _checked(run_in_process(*args, cwd=cwd), check)


def run_real(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    """``python -m maskctl ARGS`` in a new process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [*MASKCTL, *map(str, args)], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    return _checked(proc, check)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_train_eval_inspect_end_to_end(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "kw.bundle"
    train = run(
        "train",
        "--model",
        tiny_bert,
        "--task",
        keyword_task,
        "--output",
        out,
        "--max-steps",
        "3",
        "--batch-size",
        "16",
        "--lr",
        "1e-2",
    )
    assert "wrote" in train.stdout and out.is_file()
    recorded = json.loads(run("inspect", out, "--json").stdout)["metrics"]["dev"]
    metrics_file = tmp_path / "m.json"
    evaluated = run("eval", out, "--json", metrics_file)
    assert "matches the dev score recorded at training time" in evaluated.stdout
    assert json.loads(metrics_file.read_text())["metrics"] == recorded
    metrics_file.write_text("mine")  # an existing --output is refused before any work, and kept
    assert_one_line_error(run("eval", out, "--output", metrics_file, check=False), "already exists", "--overwrite")
    assert metrics_file.read_text() == "mine"
    run("eval", out, "--output", metrics_file, "--overwrite")
    assert json.loads(metrics_file.read_text())["metrics"] == recorded
    inspect = run("inspect", out).stdout
    assert (
        "keywords" in inspect
        and "bits per masked weight" in inspect
        and "3.attn.query" in inspect
        and "names under bert." in inspect
    )


def test_recipe_with_overrides_and_explicit_options(tiny_bert, keyword_task, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_bert}\ntask: {keyword_task}\nmax_steps: 2\nbatch_size: 8\nseed: 4\n")
    out = tmp_path / "r.bundle"
    run("train", "--recipe", recipe, "--output", out, "lr=0.02", "seed=5", "--batch-size", "16")
    training = json.loads(run("inspect", out, "--json").stdout)["training"]
    assert training["max_steps"] == 2  # from the recipe
    assert training["lr"] == 0.02 and training["seed"] == 5  # from key=value overrides
    assert training["batch_size"] == 16  # an explicit option beats the recipe


def test_errors_are_one_line_with_a_fix_and_exit_2(tiny_bert, keyword_task, tmp_path):
    assert_one_line_error(run("eval", tmp_path / "missing.bundle", check=False), "does not exist")
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"\x00" * 64)
    assert_one_line_error(run("eval", junk, check=False), "not a readable bundle")
    assert_one_line_error(run("train", "--task", "no-such-task", check=False), "unknown task")
    assert_one_line_error(
        run(
            "train",
            "--model",
            "bert-base-uncased",
            "--task",
            keyword_task,
            "--output",
            tmp_path / "x.bundle",
            check=False,
        ),
        "offline",
    )
    assert_one_line_error(run("train", "--model", tmp_path / "nowhere", check=False), "does not exist")
    assert_one_line_error(
        run(
            "train",
            "--model",
            tiny_bert,
            "--task",
            keyword_task,
            "--mask-blocks",
            "9-12",
            "--output",
            tmp_path / "y.bundle",
            check=False,
        ),
        "mask-blocks",
    )
    assert_one_line_error(run("train", "--recipe", tmp_path / "none.yaml", check=False), "recipe")
    assert not (tmp_path / "x.bundle").exists() and not (tmp_path / "y.bundle").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = run_real("--debug", "eval", tmp_path / "missing.bundle", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_existing_output_is_kept(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "keep.bundle"
    out.write_text("mine")
    proc = run_real(
        "train", "--model", tiny_bert, "--task", keyword_task, "--output", out, "--max-steps", "1", check=False
    )
    assert_one_line_error(proc, "already exists", "--overwrite")
    assert out.read_text() == "mine"


def test_tasks_lists_the_builtin_tasks():
    proc = run_real("tasks")
    assert "bbc-news" in proc.stdout and "sequence-classification" in proc.stdout
    assert "bbc-news" in run_real("tasks", "--names").stdout.split()


def test_version_and_help():
    assert run_real("--version").stdout.startswith("maskctl ")
    assert "train" in run_real("--help").stdout


@pytest.mark.skipif(not (Path(sys.executable).parent / "maskctl").exists(), reason="console script not installed")
def test_console_script_is_installed():
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "maskctl"), "--version"], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("maskctl")


def test_ensemble_and_export_commands(tiny_bert, keyword_task, tmp_path):
    bundles = []
    for seed in (0, 1):
        out = tmp_path / f"m{seed}.bundle"
        run("train", "--model", tiny_bert, "--task", keyword_task, "--output", out, "--max-steps", "2", "--seed", seed)
        bundles.append(out)
    proc = run("ensemble", *bundles, "--by", "best", "--split", "test", "--predictions", tmp_path / "p.jsonl")
    assert "vote by label" in proc.stdout and "(chosen)" in proc.stdout
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 60
    refused = run("ensemble", *bundles, "--split", "test", "--output", tmp_path / "p.jsonl", check=False)
    assert_one_line_error(refused, "already exists", "--overwrite")
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 60
    assert_one_line_error(run("ensemble", bundles[0], check=False), "at least two")
    run("export", bundles[0], "--output", tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").is_file()
    assert_one_line_error(run("export", bundles[0], "--output", tmp_path / "hf", check=False), "already exists")
