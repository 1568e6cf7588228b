"""bench/quality_search.py's search logic, with the training replaced by a scripted score: the lr
grid per method, the edge extension, the seeds at the best setting, masking's variants, and the
table. (Real runs take hours; `bench/run.py --quality` does them.)"""

from __future__ import annotations

import math
import os

import pytest

from tests.bench.test_bench_quick import _bench


def test_search_tunes_each_method_then_runs_seeds_and_variants(tmp_path, monkeypatch):
    q = _bench("quality_search")
    calls = []

    def fake(task, model, method, settings, work):
        calls.append((method, settings["lr"], settings["seed"], settings.get("max_grad_norm")))
        # masking peaks at lr 1e-2 (beyond the grid's edge 3e-3 ... so the grid extends), and
        # clipping helps it; finetuning peaks inside its grid
        best = {"mask": 1e-2, "finetune": 1e-4, "lora": 3e-3}[method]
        score = 0.5 - abs(math.log10(settings["lr"] / best)) / 10 + settings["seed"] / 1000
        score += 0.05 if method == "mask" and settings.get("max_grad_norm") else 0.0
        score += 0.01 if settings["epochs"] == 2 else 0.0  # the longer schedule of "more" wins a little
        result = {"score": score}
        return {"dev": result, "test": result, "kept": {"epoch": 3}, "history": [], "bytes": 10, "files": 1}

    monkeypatch.setattr(q, "train_maskctl", fake)
    monkeypatch.setattr(q, "train_lora", lambda task, model, settings, work: fake(task, model, "lora", settings, work))
    monkeypatch.setattr(
        q,
        "PLAN",
        {
            "wnut16": {
                "common": {"epochs": 1},
                "mask": {
                    "lr": [1e-3, 3e-3],
                    "variants": {"clip1": {"max_grad_norm": 1.0}},
                    "more": {"clip-long": (None, {"max_grad_norm": 1.0, "epochs": 2}), "plain-3e-2": (3e-2, {})},
                },
                "finetune": {"lr": [3e-5, 1e-4, 3e-4]},
                "lora": {"lr": [1e-3, 3e-3]},
            }
        },
    )
    summary = q.Search("wnut16", tmp_path, tmp_path / "work").all()
    assert (
        summary["mask"]["lr"] == pytest.approx(9e-3) and summary["mask"]["variant"] == "clip1"
    )  # 3e-3 x 3, then clipping
    assert summary["finetune"]["lr"] == 1e-4 and summary["lora"]["lr"] == 3e-3
    assert all(summary[m]["seeds"] == [0, 1, 2, 3, 4] for m in summary)
    # the further variants run on seed 0 (at the best lr, or their own), and every seed of the
    # best of them only when it beats the chosen setting on dev
    assert ("mask", 3e-2, 0, 0.0) in calls and ("mask", 3e-2, 1, 0.0) not in calls
    assert sum(1 for c in calls if c[0] == "mask" and c[1] == pytest.approx(9e-3) and c[3] == 1.0) == 10
    runs = len(calls)
    q.Search("wnut16", tmp_path, tmp_path / "work").all()  # finished runs are read back, not retrained
    assert len(calls) == runs
    table = q.write_table(tmp_path).read_text()
    assert "| wnut16 | mask | lr0.009-clip-long |" in table and "lr0.001 0.4" in table
    assert "| wnut16 | mask − finetune | 5 |" in table  # paired over the 5 seeds both ran
    assert (tmp_path / "quality-pareto-wnut16.png").stat().st_size > 0


def test_a_queue_runs_named_settings_seed_by_seed_and_shares_work_through_claims(tmp_path, monkeypatch):
    import subprocess
    import sys

    q = _bench("quality_search")
    calls = []

    def fake(task, model, method, settings, work):
        bound = settings["max_flips"]
        calls.append((method, settings["lr"], bound, settings["seed"]))
        dev = 0.60 - {0.01: 0.02, 0.02: 0.003, 1.0: 0.0}[bound] - (0.1 if settings["lr"] != 3e-3 else 0.0)
        flips = min(bound, 0.06)
        return {
            "dev": {"score": dev + settings["seed"] / 1e4},
            "test": {"score": dev},
            "kept": {"epoch": 1},
            "history": [],
            "bytes": int(1e6 * flips),
            "files": 1,
            "flip_fraction": flips,
        }

    monkeypatch.setattr(q, "train_maskctl", fake)
    monkeypatch.setattr(
        q,
        "PLAN",
        {
            "wnut16": {
                "common": {"epochs": 1},
                "mask": {
                    "lr": [1e-3, 3e-3, 1e-2],
                    "budget": {"budget-1": (3e-3, {"max_flips": 0.01}), "budget-2": (3e-3, {"max_flips": 0.02})},
                },
                "finetune": {"lr": [1e-4]},
            }
        },
    )
    import bench.quality_front as front

    monkeypatch.setattr(front, "TODAY", {"wnut16": "lr0.003"})
    search = q.Search("wnut16", tmp_path, tmp_path / "work")
    root = tmp_path / "quality" / "wnut16" / "mask"
    root.mkdir(parents=True)
    (root / "lr0.003-budget-2-s1.claim").write_text(str(os.getppid()))  # a live process holds this run
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "lr0.003-budget-1-s1.claim").write_text(str(dead.pid))  # a stopped queue's claim: taken over
    search.queued(["mask", "mask:budget-1", "mask:budget-2"], (0, 1))
    assert calls == [
        ("mask", 1e-3, 1.0, 0),
        ("mask", 3e-3, 1.0, 0),
        ("mask", 1e-2, 1.0, 0),  # the lr grid, seed 0
        ("mask", 3e-3, 0.01, 0),
        ("mask", 3e-3, 0.02, 0),
        ("mask", 3e-3, 1.0, 1),
        ("mask", 3e-3, 0.01, 1),
    ]
    assert not (root / "lr0.003-budget-1-s1.claim").exists()
    (root / "lr0.003-budget-2-s1.claim").unlink()
    for seed in range(2, 5):
        search.queued(["mask", "mask:budget-1", "mask:budget-2"], (seed,))
    search.queued(["mask:budget-2"], (1,))
    calls.clear()
    search.queued(["mask:@budgets"], (7,))  # every budget of the task's plan: its front
    assert calls == [("mask", 3e-3, 0.01, 7), ("mask", 3e-3, 0.02, 7)]
    calls.clear()
    (root / "lr0.003-s8.claim").write_text(str(os.getppid()))  # today's default at a seed no budget ran:
    assert search.front_claims() == []  # it does not hold the choice
    (root / "lr0.003-budget-1-s8.claim").write_text(str(os.getppid()))  # a budget's run does
    (root / "lr0.003-s2.claim").write_text(str(os.getppid()))  # and today's at a seed the budgets ran
    assert sorted(c.name for c in search.front_claims()) == ["lr0.003-budget-1-s8.claim", "lr0.003-s2.claim"]
    for name in ("lr0.003-budget-1-s8.claim", "lr0.003-s2.claim"):
        (root / name).unlink()
    search.queued(["mask:@fewest-flips"], (5, 6))  # budget-1 is 2 points lower on dev: budget-2 it is
    assert calls == [("mask", 3e-3, 0.02, 5), ("mask", 3e-3, 0.02, 6)]
    (root / "lr0.003-s8.claim").unlink()
