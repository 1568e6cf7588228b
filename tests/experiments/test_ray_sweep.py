"""Sweeps on Ray Tune (``--sweep-backend ray``): the same bundles, table and read-back as the local
backend, a failing trial named while the others finish, ASHA stopping trailing points, and one
clear line when ray is missing. A local Ray instance of 2 CPUs (``local_ray``), tiny models."""

from __future__ import annotations

import filecmp
import json
import sys

import pytest
import torch

from maskctl.cli import main
from maskctl.errors import MaskctlError
from maskctl.experiments.sweep import SweepSettings, run_sweep

GRID = {"lr": [1e-2, 5e-2], "seed": [0, 1]}  # 4 points, two keys: no edge extension


def _rows(table: dict) -> list[dict]:
    """The table's rows without what differs run to run (seconds, read back, where)."""
    rows = json.loads(table["json"].read_text())["rows"]
    return [{k: v for k, v in row.items() if k not in ("wall_s", "reused", "output")} for row in rows]


def _cli(capsys, *argv: str) -> tuple[int, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out + out.err


def test_ray_options_need_the_ray_backend_and_a_sweep():
    with pytest.raises(MaskctlError, match="--scheduler applies to --sweep-backend ray"):
        SweepSettings(scheduler="asha").check()
    with pytest.raises(MaskctlError, match="--cpus-per-trial applies to --sweep-backend ray"):
        SweepSettings(cpus_per_trial=2).check()
    with pytest.raises(MaskctlError, match="runs a sweep, and there is none"):
        SweepSettings(sweep_backend="ray").check(swept=False)
    with pytest.raises(MaskctlError, match="--gpus-per-trial -1"):
        SweepSettings(sweep_backend="ray", gpus_per_trial=-1).check()


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch, capsys, tiny_bert, keyword_task, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, text = _cli(
        capsys,
        "train",
        "--model",
        str(tiny_bert),
        "--task",
        str(keyword_task),
        "--max-steps",
        "1",
        "--sweep",
        "lr=1e-2,5e-2",
        "--sweep-backend",
        "ray",
        "--output",
        str(tmp_path / "kw.bundle"),
    )
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, text
    assert "--sweep-backend ray needs ray[tune], which is not installed" in lines[0]
    assert 'pip install "maskctl[ray]"' in lines[0]
    assert not (tmp_path / "kw.sweep").exists()  # refused before any training


@pytest.mark.slow
def test_a_sweep_on_ray_equals_the_local_sweep(local_ray, capsys, tiny_bert, keyword_task, tmp_path):
    settings = {"model": str(tiny_bert), "task": str(keyword_task), "max_steps": 3, "batch_size": 16}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each trial runs (--cpus-per-trial 1): the same float sums
    try:
        local = run_sweep(settings, GRID, output=tmp_path / "local" / "kw.bundle", extend=0)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "ray" / "kw.bundle"
    code, text = _cli(
        capsys,
        "train",
        "--model",
        str(tiny_bert),
        "--task",
        str(keyword_task),
        "--max-steps",
        "3",
        "--batch-size",
        "16",
        "--sweep",
        "lr=1e-2,5e-2",
        "--sweep",
        "seed=0,1",
        "--sweep-backend",
        "ray",
        "--cpus-per-trial",
        "1",
        "--output",
        str(out),
    )
    assert code == 0, text
    assert "4 points as Ray Tune trials" in text and "best lr=" in text
    folder = out.with_name("kw.sweep")
    for point in local.points:
        on_ray = folder / point.output.parent.name
        assert filecmp.cmp(point.output, on_ray / "kw.bundle", shallow=False), point.label  # byte-identical
        stored = json.loads((on_ray / "result.json").read_text())
        assert (
            stored["metrics"] == point.metrics
            and stored["training"] == json.loads((point.output.parent / "result.json").read_text())["training"]
        )
    assert _rows({"json": folder / "sweep.json"}) == _rows(local.table)
    assert filecmp.cmp(out, local.output, shallow=False)  # the same best, copied
    assert (folder / "tune").is_dir()  # Tune's own records beside the points

    again = run_sweep(settings, GRID, output=out, extend=0, backend=SweepSettings(sweep_backend="ray"))
    assert all(p.reused for p in again.points)  # finished points read back: no trial ran
    assert _rows(again.table) == _rows(local.table)


@pytest.mark.slow
def test_a_failing_trial_is_named_and_the_others_finish(local_ray, tiny_bert, keyword_task, tmp_path):
    settings = {"model": str(tiny_bert), "task": str(keyword_task), "max_steps": 2, "batch_size": 16}
    out = tmp_path / "kw.bundle"
    ray = SweepSettings(sweep_backend="ray")
    with pytest.raises(MaskctlError) as info:  # the tiny model has 4 blocks: top:9 fails when it is loaded
        run_sweep(settings, {"mask_blocks": ["top:2", "top:9"]}, output=out, extend=0, backend=ray)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "1 of 2 sweep points failed (mask_blocks=top:9); mask_blocks=top:9: --mask-blocks "
        "top:9: K must be between 0 and 4"
    )
    folder = tmp_path / "kw.sweep"
    assert (folder / "mask_blocks=top_2" / "kw.bundle").is_file()  # the other point finished
    assert [r["point"] for r in _rows({"json": folder / "sweep.json"})] == ["mask_blocks=top:2"]
    assert (folder / "tune" / "grid" / "mask_blocks=top_9" / "error.txt").is_file()
    assert not out.exists()  # no best of an unfinished sweep
    done = run_sweep(settings, {"mask_blocks": ["top:2"]}, output=out, extend=0, backend=ray)
    assert done.points[0].reused and out.is_file()


@pytest.mark.slow
def test_asha_stops_trailing_points_and_a_rerun_reads_them_back(
    local_ray, pretrained_tiny_bert, keyword_task, tmp_path
):
    # The two learning rates that learn start first; the two that barely move the mask reach
    # their first evaluation after them and trail: ASHA stops them there.
    settings = {
        "model": str(pretrained_tiny_bert),
        "task": str(keyword_task),
        "max_steps": 12,
        "eval_every": 2,
        "batch_size": 16,
    }
    grid = {"lr": [3e-2, 1e-1, 1e-5, 3e-5]}
    asha = SweepSettings(sweep_backend="ray", scheduler="asha")
    result = run_sweep(settings, grid, output=tmp_path / "kw.bundle", extend=0, backend=asha)
    stopped = [p for p in result.points if p.stopped_at is not None]
    assert stopped and result.best.stopped_at is None and result.best.score > 0.5
    assert all(not p.output.exists() and p.stopped_at >= 1 for p in stopped)
    rows = json.loads(result.table["json"].read_text())["rows"]
    assert [r["stopped_at_eval"] is not None for r in rows] == [p.stopped_at is not None for p in result.points]
    again = run_sweep(settings, grid, output=tmp_path / "kw.bundle", extend=0, backend=asha)
    assert all(p.reused for p in again.points)
    assert [p.stopped_at for p in again.points] == [p.stopped_at for p in result.points]
