"""``maskctl analyze sparsity`` and ``maskctl analyze layers`` end to end on the tiny model."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_sweep_cli import assert_one_line_error, cli
from tests.experiments.test_sweep import PNG


def settings(tiny_bert, keyword_task):
    return [f"model={tiny_bert}", f"task={keyword_task}", "max_steps=1", "batch_size=16", "lr=1e-2"]


def test_sparsity_end_to_end(capsys, tiny_bert, keyword_task, tmp_path):
    code, stdout, _ = cli(
        capsys,
        "analyze",
        "sparsity",
        "--values",
        "5,60",
        "--seeds",
        "0",
        "--out",
        tmp_path,
        *settings(tiny_bert, keyword_task),
    )
    assert code == 0 and "initial sparsity 60%" in stdout
    rows = json.loads((tmp_path / "sparsity.json").read_text())["rows"]
    assert [row["init_sparsity_pct"] for row in rows] == [5, 60]
    assert (tmp_path / "sparsity.png").read_bytes().startswith(PNG)
    assert (tmp_path / "runs" / "init_sparsity=0.6,seed=0" / "mask.bundle").is_file()


def test_layers_end_to_end_from_a_recipe(capsys, tiny_bert, keyword_task, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_bert}\ntask: {keyword_task}\nmax_steps: 1\nbatch_size: 16\nmask_blocks: 2-3\n")
    code, stdout, _ = cli(
        capsys, "analyze", "layers", "--recipe", recipe, "--k", "1", "--seeds", "0,1", "--out", tmp_path / "out"
    )
    assert code == 0 and "top-down K=1 (blocks 3)" in stdout
    rows = json.loads((tmp_path / "out" / "layers-runs.json").read_text())["rows"]
    assert [(r["direction"], r["seed"]) for r in rows] == [
        ("bottom-up", 0),
        ("bottom-up", 1),
        ("top-down", 0),
        ("top-down", 1),
    ]
    assert (tmp_path / "out" / "layers.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["sparsity", "--values", "0,5"], "not an initial sparsity"),
        (["sparsity", "--seeds", "a"], "comma-separated"),
        (["sparsity", "init_sparsity=0.1"], "varies"),
        (["layers", "--k", "9"], "this model has 4 blocks"),
        (["layers", "mask_blocks=all"], "varies"),
        (["layers", "--sweep", "seed=1,2"], "already varies seed"),
        (["layers", "--recipe", "no-such-recipe"], "does not exist"),
    ],
)
def test_bad_input_is_a_one_line_error(capsys, tiny_bert, keyword_task, tmp_path, args, fragment):
    assert_one_line_error(
        cli(capsys, "analyze", *args, "--out", tmp_path / "o", *settings(tiny_bert, keyword_task)), fragment
    )
    assert not (tmp_path / "o").exists()
