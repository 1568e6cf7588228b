"""``maskctl.analysis.layers`` (paper Fig. 2): bottom K and top K blocks for every K, the
K = L run shared by both curves, the pooler and classifier masked as the recipe says."""

from __future__ import annotations

import json

import pytest

from maskctl.analysis.layers import (
    VARIED,
    block_range,
    block_spec,
    count_blocks,
    parse_ks,
    run_layers,
)
from maskctl.analysis.runs import plan
from maskctl.bundle.format import load_bundle
from maskctl.errors import MaskctlError
from maskctl.experiments import sweep_points
from tests.experiments.test_sweep import PNG, FakeTrainer


def _plan(model, task, *extra):
    return plan(
        None, [f"model={model}", f"task={task}", "max_steps=1", "batch_size=16", *extra], None, 0, VARIED, "layers"
    )


def _score(args):
    blocks = args.mask_blocks
    k = 4 if blocks == "all" else int(blocks.split(":")[1])
    return (0.5 if blocks.startswith("top") else 0.3) + k / 10 + args.seed / 100


def test_both_curves_for_every_k(monkeypatch, tiny_bert, keyword_task, tmp_path):
    trainer = FakeTrainer(_score)
    monkeypatch.setattr(sweep_points, "_train", trainer)
    assert count_blocks(str(tiny_bert)) == 4
    result = run_layers(_plan(tiny_bert, keyword_task), None, [0, 1], tmp_path)
    specs = sorted({a.mask_blocks for a in trainer.calls})
    assert specs == ["all", "bottom:1", "bottom:2", "bottom:3", "top:1", "top:2", "top:3"]
    assert len(trainer.calls) == 7 * 2  # K = 4 = L is one run per seed for both curves
    assert len(result.rows) == 2 * 4 * 2
    summary = {(r["direction"], r["k"]): r for r in result.summary}
    assert summary["top-down", 2]["blocks"] == "2-3" and summary["bottom-up", 2]["blocks"] == "0-1"
    assert summary["top-down", 1]["dev_mean"] == pytest.approx(0.6 + 0.005)
    assert summary["bottom-up", 1]["dev_mean"] == pytest.approx(0.4 + 0.005)
    assert summary["bottom-up", 4]["dev_mean"] == summary["top-down", 4]["dev_mean"]
    assert summary["top-down", 3]["dev_sd"] == pytest.approx(0.00707107, rel=1e-4)
    meta = json.loads((tmp_path / "layers.json").read_text())["meta"]
    assert meta["n_blocks"] == 4 and meta["head"] == "mask" and meta["runs_folder"] == str(tmp_path / "runs")
    assert result.figure.read_bytes().startswith(PNG)
    again = run_layers(_plan(tiny_bert, keyword_task), [1, 2], [0], tmp_path)  # a subset: all read back
    assert len(trainer.calls) == 14 and all(r["reused"] for r in again.rows)


def test_real_runs_mask_only_the_chosen_blocks_and_the_head(tiny_bert, keyword_task, tmp_path):
    result = run_layers(_plan(tiny_bert, keyword_task, "lr=1e-2"), [1], [0], tmp_path)
    top = load_bundle(tmp_path / "runs" / "mask_blocks=top_1,seed=0" / "mask.bundle")
    bottom = load_bundle(tmp_path / "runs" / "mask_blocks=bottom_1,seed=0" / "mask.bundle")
    assert top.meta["mask"]["block_ids"] == [3] and bottom.meta["mask"]["block_ids"] == [0]
    masked = set(top.masks)
    assert any("encoder.layer.3." in n for n in masked) and not any("encoder.layer.0." in n for n in masked)
    assert "classifier" in masked and "bert.pooler.dense" in masked  # head: mask (the paper's)
    assert [r["direction"] for r in result.rows] == ["bottom-up", "top-down"]


def test_ks_and_specs():
    assert parse_ks(None, 6) == [1, 2, 3, 4, 5, 6] and parse_ks("3,1", 6) == [1, 3]
    with pytest.raises(MaskctlError, match="this model has 6 blocks"):
        parse_ks("7", 6)
    with pytest.raises(MaskctlError, match="comma-separated"):
        parse_ks("1.5", 6)
    assert [block_spec("top", k, 6) for k in (1, 6)] == ["top:1", "all"]
    assert [block_range("top", 2, 6), block_range("bottom", 1, 6)] == ["4-5", "0"]


def test_mask_blocks_cannot_be_overridden(tiny_bert, keyword_task):
    with pytest.raises(MaskctlError, match="mask_blocks is what `maskctl analyze layers` varies"):
        _plan(tiny_bert, keyword_task, "mask_blocks=all")
