"""`maskctl size` offline, as a user runs it: the paper's table through a real subprocess, the rest
in process (``run``: see ``inprocess.py``)."""

from __future__ import annotations

import json

import pytest

from .test_cli import assert_one_line_error, run, run_real


def test_size_prints_the_papers_table_and_says_what_it_counts():
    out = run_real("size", "--model", "bert-base-uncased", "--tasks", "11", "--ensemble", "4").stdout
    assert "4-member ensemble" in out
    assert "473.6" in out and "1,751.7" in out  # the paper: 474 MB masked, 1752 MB finetuned
    assert "437.9" in out  # one finetuned BERT-base: the paper's 438 MB
    flat = " ".join(out.split())
    assert "MB = 10^6 bytes" in flat and "never biases" in flat and "blocks 2-11" in flat


def test_size_json_is_machine_readable():
    data = json.loads(run("size", "--tasks", "3", "--ensemble", "4", "--json").stdout)
    assert data["model"]["model"] == "bert-base-uncased" and data["mb_bytes"] == 10**6
    assert [row["copies"] for row in data["tasks"]] == [1, 2, 3]
    assert abs(data["ensemble"]["masking_mb"] - 474) < 4.74
    assert abs(data["ensemble"]["finetune_mb"] - 1752) < 17.52
    assert "weights only" in data["model"]["convention"]


def test_size_refuses_an_unknown_hub_id_offline_in_one_line():
    assert_one_line_error(run("size", "--model", "no-such-org/no-such-model", check=False), "offline")
    assert_one_line_error(run("size", "--mask-blocks", "9-12", check=False), "mask-blocks")


@pytest.fixture(scope="module")
def bundles(tiny_bert, keyword_task, tmp_path_factory):
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    root = tmp_path_factory.mktemp("size-cli")
    paths = [root / f"m{i}.bundle" for i in range(2)]
    for seed, path in enumerate(paths):
        train(TrainArgs(model=str(tiny_bert), task=str(keyword_task), output=str(path), max_steps=1, seed=seed))
    return paths


def test_size_counts_real_bundles_and_plots(bundles, tmp_path):
    plot = tmp_path / "fig3.png"
    # `--bundles masks/*.bundle` after shell expansion: one flag, several paths.
    data = json.loads(run("size", "--bundles", *bundles, "--plot", plot, "--json").stdout)
    assert data["source"] == "bundles" and len(data["bundles"]) == 2
    sizes = [p.stat().st_size for p in bundles]
    assert [b["file_bytes"] for b in data["bundles"]] == sizes
    base = 4 * data["model"]["base_params"]
    assert [r["masking_bytes"] for r in data["tasks"]] == [base + sizes[0], base + sum(sizes)]
    assert [b["bits_per_masked_weight"] for b in data["bundles"]] == [
        pytest.approx(8 * b["file_bytes"] / b["masked_weights"]) for b in data["bundles"]
    ]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    table = run("size", "--bundles", *bundles).stdout
    assert "bits per masked weight" in table and "bundles on disk" in table


def test_size_keeps_an_existing_plot_unless_overwrite(tmp_path):
    plot = tmp_path / "mine.png"
    plot.write_text("mine")
    assert_one_line_error(run("size", "--plot", plot, check=False), "already exists", "--overwrite")
    assert plot.read_text() == "mine"
    run("size", "--plot", plot, "--overwrite")
    assert plot.read_bytes()[:4] == b"\x89PNG"
