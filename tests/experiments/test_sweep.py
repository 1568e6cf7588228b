"""Sweeps: grid parsing, the edge-extension rule, choosing and copying the best, resumption.

The selection logic is checked with a fake trainer whose dev score is a known function of the
learning rate; one real tiny sweep checks that the pieces fit the real trainer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from maskctl.errors import MaskctlError
from maskctl.experiments import sweep_points
from maskctl.experiments.recipes import parse_sweep
from maskctl.experiments.sweep import run_sweep
from maskctl.experiments.sweep_points import edge_extension, point_label
from maskctl.training.trainer import TrainResult
from tests.conftest import PNG

PAPER_GRID = {"lr": [1e-5, 3e-5, 5e-5, 7e-5, 9e-5]}


class FakeTrainer:
    """Writes a small file as the "bundle" and scores a run by ``score(args)``."""

    def __init__(self, score):
        self.score, self.calls = score, []

    def __call__(self, args, callback):
        self.calls.append(args)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(f"lr={args.lr} seed={args.seed}")
        value = self.score(args)
        return TrainResult(
            output=Path(args.output),
            method="mask",
            wall_seconds=0.5,
            metrics={"accuracy": value, "n": 10, "score": value},
            sparsity={"init": args.init_sparsity or 0.05, "final": (args.init_sparsity or 0.05) + 0.01},
        )


def peak_at(best_lr):
    return lambda args: 1.0 - abs(math.log(args.lr / best_lr)) / 10


@pytest.fixture
def settings(keyword_task):
    return {"task": str(keyword_task), "model": "unused-by-the-fake", "max_steps": 1}


def fake(monkeypatch, score):
    trainer = FakeTrainer(score)
    monkeypatch.setattr(sweep_points, "_train", trainer)
    return trainer


def lrs(result):
    return [p.point["lr"] for p in result.points]


def test_sweep_specs_parse_into_grids():
    assert parse_sweep(["lr=1e-5,3e-5"]) == {"lr": [1e-5, 3e-5]}
    assert parse_sweep(["lr=1e-3", "seed=0,1"]) == {"lr": [1e-3], "seed": [0, 1]}
    assert parse_sweep(["mask-blocks=top:2,all"]) == {"mask_blocks": ["top:2", "all"]}
    assert point_label({"lr": 3e-05, "seed": 1}) == "lr=3e-05,seed=1"


@pytest.mark.parametrize(
    "specs, message",
    [
        (["lr"], "is not key=v1,v2"),
        (["lr="], "is not key=v1,v2"),
        (["lr=1e-3,,2e-3"], "is not key=v1,v2"),
        (["learning_rate=1e-3"], "cannot sweep 'learning_rate'"),
        (["output=a.bundle,b.bundle"], "cannot sweep 'output'"),
        (["lr=fast"], "lr must be float"),
        (["epochs=1.5"], "epochs must be int"),
        (["lr=1e-3", "seed=1", "epochs=1"], "a sweep takes one or two"),
        (["lr=1e-3", "lr=2e-3"], "given twice"),
    ],
)
def test_bad_sweep_specs_are_one_line_errors(specs, message):
    with pytest.raises(MaskctlError, match=message) as info:
        parse_sweep(specs)
    assert "\n" not in str(info.value)


def test_best_at_the_top_edge_extends_by_x3_up_to_the_cap(monkeypatch, settings, tmp_path):
    trainer = fake(monkeypatch, peak_at(1e-3))
    result = run_sweep(settings, PAPER_GRID, output=tmp_path / "m.bundle", extend=3)
    assert lrs(result) == [1e-5, 3e-5, 5e-5, 7e-5, 9e-5, 2.7e-4, 8.1e-4, 2.43e-3]
    assert [p.added for p in result.points] == [False] * 5 + [True] * 3
    assert result.best.point == {"lr": 8.1e-4} and len(trainer.calls) == 8
    assert (tmp_path / "m.bundle").read_text() == "lr=0.00081 seed=0"  # the best run's output, copied


def test_the_cap_stops_extension_and_zero_disables_it(monkeypatch, settings, tmp_path):
    fake(monkeypatch, peak_at(1e-2))
    assert lrs(run_sweep(settings, PAPER_GRID, output=tmp_path / "a.bundle", extend=1))[5:] == [2.7e-4]
    result = run_sweep(settings, PAPER_GRID, output=tmp_path / "b.bundle", extend=0)
    assert lrs(result) == PAPER_GRID["lr"] and result.best.point == {"lr": 9e-5}


def test_best_at_the_bottom_edge_extends_downwards(monkeypatch, settings, tmp_path):
    fake(monkeypatch, peak_at(2e-6))
    result = run_sweep(settings, PAPER_GRID, output=tmp_path / "m.bundle", extend=3)
    # 3.33e-6 is the new best, at the edge: extend again; 1.11e-6 is worse, so the best is inside
    # the grid now and the sweep stops before the cap of 3. Values keep 6 significant digits.
    assert lrs(result)[5:] == [3.33333e-6, 1.11111e-6]
    assert result.best.point == {"lr": 3.33333e-6}


def test_interior_best_flat_grids_and_other_keys_never_extend(monkeypatch, settings, tmp_path):
    fake(monkeypatch, peak_at(5e-5))
    assert len(run_sweep(settings, PAPER_GRID, output=tmp_path / "a.bundle").points) == 5
    fake(monkeypatch, lambda args: 0.25)  # nothing learned anywhere: no direction to go
    flat = run_sweep(settings, PAPER_GRID, output=tmp_path / "b.bundle")
    assert len(flat.points) == 5 and flat.best.point == {"lr": 1e-5}  # ties: the first point run
    fake(monkeypatch, lambda args: args.seed / 10)
    seeds = run_sweep(settings, {"seed": [0, 1, 2]}, output=tmp_path / "c.bundle")
    assert [p.point["seed"] for p in seeds.points] == [0, 1, 2] and seeds.best.point == {"seed": 2}
    two = run_sweep(settings, {"lr": [1e-5, 9e-5], "seed": [0, 1]}, output=tmp_path / "d.bundle")
    assert len(two.points) == 4 and two.figure is None  # two keys: a grid, no extension, no figure


def test_edge_extension_rule_directly():
    def points(pairs):
        return [
            sweep_points.PointResult(point={"lr": lr}, label="", output=Path("x"), metrics={"score": s})
            for lr, s in pairs
        ]

    assert edge_extension({"lr": []}, points([(1e-5, 0.1), (9e-5, 0.2)])) == pytest.approx(2.7e-4)
    assert edge_extension({"lr": []}, points([(1e-5, 0.3), (9e-5, 0.2)])) == 3.33333e-6
    assert edge_extension({"lr": []}, points([(1e-5, 0.2), (9e-5, 0.2)])) is None  # tie
    assert edge_extension({"lr": []}, points([(1e-5, 0.2)])) is None  # one point has no edge
    assert edge_extension({"init_sparsity": []}, points([(0.1, 0.1), (0.5, 0.2)])) is None


def test_table_figure_and_point_folders(monkeypatch, settings, tmp_path):
    fake(monkeypatch, peak_at(3e-4))
    out = tmp_path / "masks" / "kw.bundle"
    result = run_sweep(settings, {"lr": [1e-4, 3e-4, 1e-3]}, output=out)
    assert result.folder == tmp_path / "masks" / "kw.sweep"
    assert (result.folder / "lr=0.0003" / "kw.bundle").is_file()
    assert json.loads((result.folder / "lr=0.0003" / "result.json").read_text())["metrics"]["score"] == 1.0
    rows = json.loads(result.table["json"].read_text())["rows"]
    assert [r["point"] for r in rows] == ["lr=0.0001", "lr=0.0003", "lr=0.001"]
    assert [r["best"] for r in rows] == [False, True, False]
    assert {"dev_score", "dev_accuracy", "dev_n", "final_sparsity", "wall_s", "output", "lr"} <= set(rows[0])
    assert rows[1]["output"] == str(result.folder / "lr=0.0003" / "kw.bundle")
    assert "| lr=0.0003 |" in result.table["md"].read_text()
    assert result.figure.read_bytes().startswith(PNG)


def test_existing_output_is_refused_before_any_training(monkeypatch, settings, tmp_path):
    out = tmp_path / "keep.bundle"
    out.write_text("precious")
    trainer = fake(monkeypatch, peak_at(1e-3))
    with pytest.raises(MaskctlError, match="already exists"):
        run_sweep(settings, PAPER_GRID, output=out)
    assert out.read_text() == "precious" and trainer.calls == []
    run_sweep({**settings, "overwrite": True}, {"lr": [1e-4, 1e-3]}, output=out, extend=0)
    assert out.read_text() == "lr=0.001 seed=0"


def test_rerunning_reads_finished_points_back(monkeypatch, settings, tmp_path):
    trainer = fake(monkeypatch, peak_at(1e-3))
    out = tmp_path / "m.bundle"
    run_sweep(settings, {"lr": [1e-4, 1e-3]}, output=out, extend=0)
    (out.parent / "m.sweep" / "lr=0.0001" / "result.json").unlink()  # as if interrupted during this point
    out.unlink()
    again = run_sweep(settings, {"lr": [1e-4, 1e-3]}, output=out, extend=0)
    assert [p.reused for p in again.points] == [False, True] and len(trainer.calls) == 3
    finished = run_sweep(settings, {"lr": [1e-4, 1e-3]}, output=out, extend=0)  # over its own output: no --overwrite
    assert all(p.reused for p in finished.points) and len(trainer.calls) == 3
    out.write_text("edited by hand")  # no longer the sweep's copy of a point: kept
    with pytest.raises(MaskctlError, match="already exists"):
        run_sweep(settings, {"lr": [1e-4, 1e-3]}, output=out, extend=0)
    assert out.read_text() == "edited by hand"
    with pytest.raises(MaskctlError, match=r"holds a run with other settings \(max_steps\)"):
        run_sweep(
            {**settings, "max_steps": 2},
            {"lr": [1e-4]},
            output=tmp_path / "m2.bundle",
            folder=out.parent / "m.sweep",
            extend=0,
        )
    replaced = run_sweep(
        {**settings, "max_steps": 2, "overwrite": True},
        {"lr": [1e-4]},
        output=tmp_path / "m2.bundle",
        folder=out.parent / "m.sweep",
        extend=0,
    )
    assert not replaced.points[0].reused and trainer.calls[-1].max_steps == 2


def test_resume_and_sweep_do_not_mix(settings, tmp_path):
    with pytest.raises(MaskctlError, match="not a sweep"):
        run_sweep({**settings, "resume": str(tmp_path)}, PAPER_GRID, output=tmp_path / "m.bundle")
    with pytest.raises(MaskctlError, match="should end in .bundle"):
        run_sweep(settings, PAPER_GRID, output=tmp_path / "m.mask")


def test_a_real_tiny_sweep(tiny_bert, keyword_task, tmp_path):
    from maskctl.bundle.format import load_bundle

    settings = {"model": str(tiny_bert), "task": str(keyword_task), "max_steps": 2, "batch_size": 16}
    result = run_sweep(settings, {"lr": [1e-2, 5e-2]}, output=tmp_path / "kw.bundle", extend=0)
    assert len(result.points) == 2 and result.best in result.points
    assert all(0 <= p.score <= 1 and p.sparsity["final"] > 0 for p in result.points)
    copied = load_bundle(tmp_path / "kw.bundle")
    assert copied.meta["training"]["lr"] == result.best.point["lr"]
    assert copied.meta["metrics"]["dev"]["score"] == result.best.score
    assert result.figure.read_bytes().startswith(PNG)
