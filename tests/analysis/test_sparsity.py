"""``maskctl.analysis.sparsity`` (paper Fig. 1): one run per sparsity and seed, mean ± sd,
resumable, and the runs really start at the requested sparsity."""

from __future__ import annotations

import json

import pytest

from maskctl.analysis.runs import plan
from maskctl.analysis.sparsity import VARIED, parse_percents, run_sparsity
from maskctl.errors import MaskctlError
from maskctl.experiments import sweep_points
from tests.experiments.test_sweep import PNG, FakeTrainer


def _plan(model, task, *extra, grid=None):
    return plan(
        None, [f"model={model}", f"task={task}", "max_steps=1", "batch_size=16", *extra], grid, 0, VARIED, "sparsity"
    )


def test_rows_summary_and_resumption(monkeypatch, tiny_bert, keyword_task, tmp_path):
    trainer = FakeTrainer(lambda args: 0.9 - args.init_sparsity + args.seed / 100)
    monkeypatch.setattr(sweep_points, "_train", trainer)
    result = run_sparsity(_plan(tiny_bert, keyword_task), [1, 50], [0, 2], tmp_path)
    assert [(r["init_sparsity_pct"], r["seed"]) for r in result.rows] == [(1, 0), (1, 2), (50, 0), (50, 2)]
    assert sorted((a.init_sparsity, a.seed) for a in trainer.calls) == [(0.01, 0), (0.01, 2), (0.5, 0), (0.5, 2)]
    one, fifty = result.summary
    assert one["init_sparsity_pct"] == 1 and one["seeds"] == 2
    assert one["dev_mean"] == pytest.approx(0.9 - 0.01 + 0.01) and one["dev_sd"] == pytest.approx(0.0141421, rel=1e-4)
    assert fifty["dev_mean"] == pytest.approx(0.41)
    assert (tmp_path / "runs" / "init_sparsity=0.5,seed=2" / "mask.bundle").is_file()
    table = json.loads((tmp_path / "sparsity.json").read_text())
    assert table["meta"]["runs_folder"] == str(tmp_path / "runs") and len(table["rows"]) == 2
    assert len(json.loads((tmp_path / "sparsity-runs.json").read_text())["rows"]) == 4
    assert result.figure == tmp_path / "sparsity.png" and result.figure.read_bytes().startswith(PNG)
    # An interrupted analysis is continued by rerunning it: finished runs are read back.
    again = run_sparsity(_plan(tiny_bert, keyword_task), [1, 50, 95], [0, 2], tmp_path)
    assert len(trainer.calls) == 6 and [r["reused"] for r in again.rows] == [True] * 4 + [False] * 2


def test_a_grid_tunes_each_run(monkeypatch, tiny_bert, keyword_task, tmp_path):
    monkeypatch.setattr(sweep_points, "_train", FakeTrainer(lambda args: args.lr * 10 - args.init_sparsity))
    result = run_sparsity(_plan(tiny_bert, keyword_task, grid=["lr=1e-3,1e-2"]), [5], [0], tmp_path)
    (row,) = result.rows
    assert row["best_lr"] == 1e-2 and row["dev_score"] == pytest.approx(0.1 - 0.05)
    assert (tmp_path / "runs" / "init_sparsity=0.05,seed=0" / "sweep" / "sweep.csv").is_file()


def test_real_runs_start_at_the_requested_sparsity(tiny_bert, keyword_task, tmp_path):
    result = run_sparsity(_plan(tiny_bert, keyword_task, "lr=1e-2"), [5, 80], [0], tmp_path)
    finals = [row["final_sparsity_pct"] for row in result.rows]
    assert finals[0] == pytest.approx(5, abs=1) and finals[1] == pytest.approx(80, abs=2)
    assert all(0 <= row["dev_score"] <= 1 for row in result.rows)


def test_bad_values_and_varied_keys_are_refused(tiny_bert, keyword_task):
    assert parse_percents("1, 5,50,5") == [1, 5, 50]
    for text, message in (
        ("0,5", "not an initial sparsity"),
        ("5,100", "not an initial sparsity"),
        ("five", "comma-separated"),
        ("", "empty"),
    ):
        with pytest.raises(MaskctlError, match=message):
            parse_percents(text)
    with pytest.raises(MaskctlError, match="init_sparsity is what `maskctl analyze sparsity` varies"):
        _plan(tiny_bert, keyword_task, "init_sparsity=0.1")
    with pytest.raises(MaskctlError, match="already varies seed"):
        _plan(tiny_bert, keyword_task, grid=["seed=1,2"])
    with pytest.raises(MaskctlError, match="studies masks"):
        _plan(tiny_bert, keyword_task, "method=finetune")
