"""``sizing.size_tasks``: what ``maskctl size`` shows, as one library call: the formula or real
bundle files, the ensemble row, the JSON payload, and a plot never written over unasked.
Offline: bert-base-uncased is counted from its shipped config; the bundle is a stored fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskctl.errors import MaskctlError
from maskctl.experiments import sizing

BUNDLE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "keywords-format2.bundle"


def test_the_formula_gives_one_row_per_task_and_an_ensemble_row():
    report = sizing.size_tasks(tasks=3, members=4)
    assert report.source == "formula" and report.bundles is None and report.plot is None
    assert [row.copies for row in report.rows] == [1, 2, 3]
    assert report.rows == sizing.growth(sizing.count_model(), 3)
    assert report.ensemble == sizing.ensemble(report.count, 4)
    assert round(report.ensemble.masking_bytes / sizing.MB) == 474  # the paper's 4-member figure
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["source"] == "formula" and payload["mb_bytes"] == 10**6 and payload["bundles"] is None
    assert [row["copies"] for row in payload["tasks"]] == [1, 2, 3] and payload["ensemble"]["copies"] == 4


def test_bundles_replace_the_formula_for_masking():
    report = sizing.size_tasks([BUNDLE, BUNDLE], spec="bert-base-uncased")
    assert report.source == "bundles" and len(report.rows) == 2 and report.ensemble is None
    base = sizing.BYTES_PER_FLOAT * report.count.base_params
    assert [row.masking_bytes for row in report.rows] == [
        base + BUNDLE.stat().st_size,
        base + 2 * BUNDLE.stat().st_size,
    ]
    assert report.to_dict()["bundles"][0]["file_bytes"] == BUNDLE.stat().st_size


def test_an_existing_plot_is_refused_before_counting_and_kept(tmp_path, monkeypatch):
    plot = tmp_path / "fig.png"
    plot.write_text("mine")
    monkeypatch.setattr(sizing, "count_model", lambda *a: pytest.fail("counted before the refusal"))
    with pytest.raises(MaskctlError, match="already exists"):
        sizing.size_tasks(plot=plot)
    assert plot.read_text() == "mine"
    monkeypatch.undo()
    report = sizing.size_tasks(tasks=2, plot=plot, overwrite=True)
    assert plot.read_bytes()[:4] == b"\x89PNG" and report.to_dict()["plot"] == str(plot)
