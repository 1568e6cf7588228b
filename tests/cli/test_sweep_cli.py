"""``maskctl train --sweep`` and a recipe's ``sweep:`` through the real command line (in process)."""

from __future__ import annotations

import json

import pytest

from maskctl.cli import main


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def assert_one_line_error(result, *fragments):
    code, out, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (code, out, err)
    assert "Traceback" not in out + err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_sweep_keeps_the_best_and_never_clobbers_output(capsys, tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "kw.bundle"
    base = [
        "train",
        "--model",
        tiny_bert,
        "--task",
        keyword_task,
        "--output",
        out,
        "--max-steps",
        "1",
        "--batch-size",
        "16",
        "--sweep",
        "lr=1e-2,3e-2",
        "--sweep-extend",
        "0",
    ]
    code, stdout, _ = cli(capsys, *base)
    assert code == 0 and out.is_file()
    table = json.loads((tmp_path / "kw.sweep" / "sweep.json").read_text())
    assert [row["point"] for row in table["rows"]] == ["lr=0.01", "lr=0.03"]
    best = next(row for row in table["rows"] if row["best"])
    assert f"best {best['point']}" in stdout
    before = out.read_bytes()
    code, stdout, _ = cli(capsys, *base)  # rerun as written: finished points read back, its own copy replaced
    assert code == 0 and stdout.count("read back from an earlier run") == 2 and out.read_bytes() == before
    out.write_bytes(b"mine")  # an output that is not the sweep's copy of a point is never clobbered
    assert_one_line_error(cli(capsys, *base), "already exists", "--overwrite")
    assert out.read_bytes() == b"mine"
    code, stdout, _ = cli(capsys, *base, "--overwrite")
    assert code == 0 and stdout.count("read back from an earlier run") == 2 and out.read_bytes() == before


def test_recipe_sweep_runs_and_a_fixed_key_leaves_it(capsys, tiny_bert, keyword_task, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {tiny_bert}\ntask: {keyword_task}\nmax_steps: 1\nbatch_size: 16\n"
        "sweep: {lr: [0.01, 0.02]}\nsweep_extend: 0\n"
    )
    code, _, _ = cli(capsys, "train", "--recipe", recipe, "--output", tmp_path / "a.bundle")
    assert code == 0 and len(json.loads((tmp_path / "a.sweep" / "sweep.json").read_text())["rows"]) == 2
    code, stdout, _ = cli(capsys, "train", "--recipe", recipe, "--output", tmp_path / "b.bundle", "lr=0.05")
    assert code == 0 and "not swept: lr" in stdout
    assert (tmp_path / "b.bundle").is_file() and not (tmp_path / "b.sweep").exists()
    code, _, _ = cli(capsys, "train", "--recipe", recipe, "--output", tmp_path / "c.bundle", "--sweep", "seed=0,1")
    rows = json.loads((tmp_path / "c.sweep" / "sweep.json").read_text())["rows"]
    assert code == 0 and [row["point"] for row in rows] == ["seed=0", "seed=1"]  # --sweep replaces the recipe's


@pytest.mark.parametrize(
    "spec, fragment",
    [
        (["--sweep", "lr"], "is not key=v1,v2"),
        (["--sweep", "lr=abc,1e-3"], "lr must be float"),
        (["--sweep", "rate=1,2"], "cannot sweep 'rate'"),
        (["--sweep", "lr=1e-3", "--sweep", "seed=1", "--sweep", "epochs=1"], "one or two"),
        (["--sweep", "lr=1e-3,2e-3", "lr=1e-3"], "both swept"),
        (["--sweep", "lr=1e-3,2e-3", "--resume", "somewhere"], "not a sweep"),
    ],
)
def test_bad_sweeps_are_one_line_errors(capsys, tiny_bert, keyword_task, tmp_path, spec, fragment):
    out = tmp_path / "x.bundle"
    assert_one_line_error(
        cli(capsys, "train", "--model", tiny_bert, "--task", keyword_task, "--output", out, *spec), fragment
    )
    assert not out.exists() and not (tmp_path / "x.sweep").exists()
